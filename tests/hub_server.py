"""A stand-in for the Hugging Face Hub, for tests: the part of the Hub's HTTP protocol that `huggingface_hub` speaks
when it creates repos, commits files and downloads them. NOT the Hub: loopback only, no LFS/Xet, no web pages.

The Hub itself is unreachable from the machines that run our tests, so `huggingface_hub` is pointed at this server
(`HF_ENDPOINT=http://127.0.0.1:PORT`, read when `huggingface_hub` is imported, or `endpoint=`). Repositories are
stored on disk with real revisions: each commit records its parent and its full file list (path -> git blob id,
contents stored once by blob id); branches are refs that a commit moves atomically, so a failed or rejected commit
never becomes a branch head.

Endpoints (`{type}` is model, dataset or space; models have no `/{type}s/` prefix in download URLs):

- POST /api/repos/create                       {name, organization, type, visibility|private, sdk} -> {url}; 409 if it exists
- POST /api/{type}s/{id}/branch/{branch}       {startingPoint?}; 409 if it exists
- POST /api/{type}s/{id}/preupload/{rev}       -> {files: [{path, uploadMode: "regular", shouldIgnore: false}]}
- POST /api/{type}s/{id}/commit/{rev}          NDJSON: header {summary, description, parentCommit?}, file (base64),
                                               deletedFile, deletedFolder -> {commitUrl, commitOid}
- POST /api/validate-yaml                      {content, repoType} -> {errors?, warnings?}; 400 on invalid metadata
- GET  /api/{type}s/{id}[/revision/{rev}]     repo info: {id, sha, siblings, private, cardData, ...}
- GET  /api/{type}s/{id}/tree/{rev}[/{path}]   [{type: file, path, size, oid}]
- GET  /api/{type}s/{id}/refs                  {branches, tags, converts}
- HEAD/GET /[{type}s/]{id}/resolve/{rev}/{file} with X-Repo-Commit, ETag, Content-Length

Errors carry `X-Error-Code` (RepoNotFound, RevisionNotFound, EntryNotFound) and a JSON `{"error": ...}` body, as the
Hub's do. Writes need an `Authorization: Bearer ...` header; private repos answer 401 + RepoNotFound without one.

Run it by hand for a local trial: `python tests/hub_server.py --root /tmp/hub --port 8765`, then
`HF_ENDPOINT=http://127.0.0.1:8765 HF_TOKEN=hf_local pasero-push ...`.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

REPO_TYPES = ("model", "dataset", "space")
MAX_BODY = 1 << 30  # one commit carries base64 files: bound it anyway
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
# A subset of the Hub's pipeline tags and Space SDKs: what validate-yaml checks against.
PIPELINE_TAGS = {
    "translation", "text-generation", "text2text-generation", "summarization", "fill-mask", "feature-extraction",
    "text-classification", "token-classification", "question-answering", "automatic-speech-recognition",
}
SPACE_SDKS = {"gradio", "docker", "static", "streamlit"}
GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.bin filter=lfs diff=lfs merge=lfs -text\n"


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def blob_oid(content: bytes) -> str:
    """The git blob id of `content` (what the Hub reports as a file's oid / ETag for non-LFS files)."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


class RepoStore:
    """Repositories on disk: ROOT/{type}s/{namespace}/{name}/{meta.json, refs.json, commits/, blobs/}."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.lock = threading.Lock()

    def path(self, repo_type: str, repo_id: str) -> Path:
        return self.root / f"{repo_type}s" / repo_id

    def exists(self, repo_type: str, repo_id: str) -> bool:
        return (self.path(repo_type, repo_id) / "meta.json").is_file()

    def meta(self, repo_type: str, repo_id: str) -> dict:
        if not self.exists(repo_type, repo_id):
            raise HubError(404, f"Repository Not Found: {repo_type} {repo_id}", "RepoNotFound")
        return json.loads((self.path(repo_type, repo_id) / "meta.json").read_text())

    def refs(self, repo_type: str, repo_id: str) -> dict[str, str]:
        return json.loads((self.path(repo_type, repo_id) / "refs.json").read_text())

    def _write_json(self, path: Path, content) -> None:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(content, indent=1))
        os.replace(tmp, path)

    def create(self, repo_type: str, repo_id: str, private: bool, sdk: str | None) -> None:
        with self.lock:
            if self.exists(repo_type, repo_id):
                raise HubError(409, f"You already created this {repo_type} repo: {repo_id}")
            base = self.path(repo_type, repo_id)
            (base / "commits").mkdir(parents=True, exist_ok=True)
            (base / "blobs").mkdir(exist_ok=True)
            self._write_json(base / "refs.json", {})
            self._write_json(base / "meta.json", {"private": private, "sdk": sdk, "created": time.time()})
            # like the Hub: a new repo starts with one commit holding .gitattributes
            sha = self._store_commit(base, None, "initial commit", "", {".gitattributes": self._store_blob(base, GITATTRIBUTES)})
            self._write_json(base / "refs.json", {"main": sha})

    def _store_blob(self, base: Path, content: bytes) -> str:
        oid = blob_oid(content)
        path = base / "blobs" / oid
        if not path.exists():
            tmp = path.with_name(f".{oid}.tmp")
            tmp.write_bytes(content)
            os.replace(tmp, path)
        return oid

    def _store_commit(self, base: Path, parent: str | None, summary: str, description: str, files: dict) -> str:
        commit = {"parent": parent, "summary": summary, "description": description, "date": time.time(),
                  "files": dict(sorted(files.items()))}
        sha = hashlib.sha1(json.dumps(commit, sort_keys=True).encode()).hexdigest()
        self._write_json(base / "commits" / f"{sha}.json", commit)
        return sha

    def resolve(self, repo_type: str, repo_id: str, revision: str) -> str:
        """The commit sha a branch name or (full) commit sha names."""
        self.meta(repo_type, repo_id)
        refs = self.refs(repo_type, repo_id)
        if revision in refs:
            return refs[revision]
        if re.fullmatch(r"[0-9a-f]{40}", revision) and (self.path(repo_type, repo_id) / "commits" / f"{revision}.json").is_file():
            return revision
        raise HubError(404, f"Invalid rev id: {revision} (repo {repo_id})", "RevisionNotFound")

    def commit_info(self, repo_type: str, repo_id: str, sha: str) -> dict:
        return json.loads((self.path(repo_type, repo_id) / "commits" / f"{sha}.json").read_text())

    def read(self, repo_type: str, repo_id: str, oid: str) -> bytes:
        return (self.path(repo_type, repo_id) / "blobs" / oid).read_bytes()

    def create_branch(self, repo_type: str, repo_id: str, branch: str, starting_point: str | None) -> None:
        with self.lock:
            refs = self.refs(repo_type, repo_id)
            if branch in refs:
                raise HubError(409, f"Reference already exists: refs/heads/{branch}")
            refs[branch] = self.resolve(repo_type, repo_id, starting_point or "main")
            self._write_json(self.path(repo_type, repo_id) / "refs.json", refs)

    def commit(self, repo_type: str, repo_id: str, branch: str, operations: list[dict]) -> str:
        """Apply one NDJSON commit to `branch`; the branch moves only once everything is stored."""
        header = next((op["value"] for op in operations if op.get("key") == "header"), None)
        if header is None or not header.get("summary"):
            raise HubError(400, "commit: missing header with a summary")
        with self.lock:
            base = self.path(repo_type, repo_id)
            refs = self.refs(repo_type, repo_id)
            if branch not in refs:
                raise HubError(404, f"Invalid rev id: {branch} (repo {repo_id})", "RevisionNotFound")
            head = refs[branch]
            parent = header.get("parentCommit")
            if parent and parent != head:
                raise HubError(412, f"A commit has happened since {parent}: {branch} is now at {head}")
            files = dict(self.commit_info(repo_type, repo_id, head)["files"])
            for op in operations:
                key, value = op.get("key"), op.get("value", {})
                if key == "file":
                    if value.get("encoding") != "base64":
                        raise HubError(400, f"commit: file {value.get('path')!r}: only base64 encoding is supported")
                    path = _check_path(value.get("path"))
                    files[path] = self._store_blob(base, base64.b64decode(value["content"]))
                elif key == "deletedFile":
                    path = _check_path(value.get("path"))
                    if files.pop(path, None) is None:
                        raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                elif key == "deletedFolder":
                    prefix = value.get("path", "").rstrip("/") + "/"
                    files = {p: oid for p, oid in files.items() if not p.startswith(prefix)}
                elif key in ("lfsFile", "copyFile"):
                    raise HubError(400, f"commit: {key} is not supported by this test server (uploadMode is regular)")
                elif key != "header":
                    raise HubError(400, f"commit: unknown operation {key!r}")
            sha = self._store_commit(base, head, header["summary"], header.get("description") or "", files)
            refs[branch] = sha
            self._write_json(base / "refs.json", refs)
            return sha


def _check_path(path) -> str:
    if not isinstance(path, str) or not path or path.startswith("/") or ".." in path.split("/"):
        raise HubError(400, f"invalid path in repo: {path!r}")
    return path


def validate_metadata(content: str, repo_type: str) -> tuple[list[str], list[str]]:
    """(errors, warnings) of a README's YAML header, checked like the Hub's validate-yaml (a subset of its rules)."""
    match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", content, re.S)
    if not match:
        return [], ["Empty or missing yaml metadata in repo card"]
    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as error:
        return [f"YAML header is not valid YAML: {error}"], []
    if not isinstance(meta, dict):
        return ["YAML header must be a mapping"], []
    errors = []

    def string_list(key):
        value = meta.get(key)
        if value is not None and not (isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))):
            errors.append(f'"{key}" must be a string or an array of strings')

    for key in ("language", "tags", "datasets", "base_model", "models", "metrics"):
        string_list(key)
    for key in ("license", "library_name", "pipeline_tag", "sdk", "sdk_version", "app_file", "title",
                "short_description"):
        if key in meta and not isinstance(meta[key], str):
            errors.append(f'"{key}" must be a string')
    if isinstance(meta.get("language"), list):
        for code in meta["language"]:
            if isinstance(code, str) and not re.fullmatch(r"[a-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*", code):
                errors.append(f'"language": {code!r} is not a valid language code')
    if repo_type == "model":
        if "pipeline_tag" in meta and meta["pipeline_tag"] not in PIPELINE_TAGS:
            errors.append(f'"pipeline_tag" must be a valid pipeline tag, got {meta["pipeline_tag"]!r}')
        errors += _model_index_errors(meta.get("model-index"))
    if repo_type == "space":
        if meta.get("sdk") not in SPACE_SDKS:
            errors.append(f'"sdk" must be one of {sorted(SPACE_SDKS)}, got {meta.get("sdk")!r}')
        if meta.get("sdk") == "gradio" and "sdk_version" not in meta:
            errors.append('"sdk_version" is required with sdk: gradio')
        if isinstance(meta.get("short_description"), str) and len(meta["short_description"]) > 60:
            errors.append('"short_description" must be at most 60 characters')
    return errors, []


def _model_index_errors(model_index) -> list[str]:
    if model_index is None:
        return []
    if not isinstance(model_index, list) or not model_index:
        return ['"model-index" must be a non-empty array']
    errors = []
    for i, model in enumerate(model_index):
        if not isinstance(model, dict) or not isinstance(model.get("name"), str):
            errors.append(f'"model-index[{i}].name" is required')
            continue
        for j, result in enumerate(model.get("results") or []):
            where = f"model-index[{i}].results[{j}]"
            if not isinstance((result.get("task") or {}).get("type"), str):
                errors.append(f'"{where}.task.type" is required')
            dataset = result.get("dataset") or {}
            if not (isinstance(dataset.get("type"), str) and isinstance(dataset.get("name"), str)):
                errors.append(f'"{where}.dataset" needs "type" and "name"')
            metrics = result.get("metrics")
            if not isinstance(metrics, list) or not metrics:
                errors.append(f'"{where}.metrics" must be a non-empty array')
                continue
            for k, metric in enumerate(metrics):
                if not isinstance(metric.get("type"), str) or not isinstance(metric.get("value"), (int, float, str)):
                    errors.append(f'"{where}.metrics[{k}]" needs "type" and a "value"')
    return errors


class HubHandler(BaseHTTPRequestHandler):
    server_version = "pasero-test-hub/1"
    store: RepoStore

    def log_message(self, format, *args):  # quiet: tests read failures from responses
        pass

    # -- plumbing -----------------------------------------------------------------------------------------------------
    def _send(self, status: int, body: bytes = b"", headers: dict | None = None, content_type="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, content, headers: dict | None = None):
        self._send(status, json.dumps(content).encode(), headers)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise HubError(413, f"request body too large ({length} bytes)")
        return self.rfile.read(length)

    def _authorized(self) -> bool:
        return (self.headers.get("Authorization") or "").startswith("Bearer ")

    def _require_auth(self):
        if not self._authorized():
            raise HubError(401, "Invalid credentials in Authorization header")

    def _repo(self, repo_type: str, repo_id: str) -> dict:
        meta = self.store.meta(repo_type, repo_id)
        if meta["private"] and not self._authorized():
            raise HubError(401, f"Repository Not Found for {repo_id}: private repository, no credentials",
                           "RepoNotFound")
        return meta

    def _dispatch(self):
        url = urlsplit(self.path)
        path, query = url.path, parse_qs(url.query)
        try:
            for pattern, handler in ROUTES.get(self.command, []):
                match = pattern.fullmatch(path)
                if match:
                    return handler(self, *[unquote(g) if g is not None else None for g in match.groups()], query=query)
            raise HubError(404, f"no route for {self.command} {path}")
        except HubError as error:
            headers = {"X-Error-Code": error.code, "X-Error-Message": error.message} if error.code else {}
            self._json(error.status, {"error": error.message}, headers)

    do_GET = do_POST = do_HEAD = _dispatch

    # -- endpoints ----------------------------------------------------------------------------------------------------
    def create_repo(self, query):
        self._require_auth()
        payload = json.loads(self._body() or b"{}")
        name, org = payload.get("name"), payload.get("organization")
        repo_type = payload.get("type") or "model"
        if repo_type not in REPO_TYPES:
            raise HubError(400, f"invalid repo type {repo_type!r}")
        if not isinstance(name, str) or not NAME.match(name) or (org is not None and not NAME.match(str(org))):
            raise HubError(400, f"invalid repo name {org}/{name}")
        if repo_type == "space" and payload.get("sdk") not in SPACE_SDKS:
            raise HubError(400, f"a Space needs an sdk among {sorted(SPACE_SDKS)}")
        repo_id = f"{org or 'user'}/{name}"
        private = payload.get("visibility") == "private" or bool(payload.get("private"))
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        url = f"http://{self.headers.get('Host')}/{prefix}{repo_id}"
        try:
            self.store.create(repo_type, repo_id, private, payload.get("sdk"))
        except HubError as error:
            self._json(409, {"error": error.message, "url": url})
            return
        self._json(200, {"url": url, "name": repo_id})

    def create_branch(self, repo_type, repo_id, branch, query):
        self._require_auth()
        self._repo(repo_type, repo_id)
        payload = json.loads(self._body() or b"{}")
        self.store.create_branch(repo_type, repo_id, branch, payload.get("startingPoint"))
        self._json(200, {})

    def preupload(self, repo_type, repo_id, revision, query):
        self._require_auth()
        self._repo(repo_type, repo_id)
        self.store.resolve(repo_type, repo_id, revision)
        payload = json.loads(self._body() or b"{}")
        files = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in payload.get("files", [])]
        self._json(200, {"files": files, "commitOid": self.store.resolve(repo_type, repo_id, revision)})

    def commit(self, repo_type, repo_id, revision, query):
        self._require_auth()
        self._repo(repo_type, repo_id)
        body = self._body()
        try:
            operations = [json.loads(line) for line in body.splitlines() if line.strip()]
        except json.JSONDecodeError as error:
            raise HubError(400, f"commit: invalid NDJSON: {error}") from None
        sha = self.store.commit(repo_type, repo_id, revision, operations)
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        self._json(200, {"commitUrl": f"http://{self.headers.get('Host')}/{prefix}{repo_id}/commit/{sha}",
                         "commitOid": sha, "success": True})

    def validate_yaml(self, query):
        payload = json.loads(self._body() or b"{}")
        errors, warnings = validate_metadata(payload.get("content", ""), payload.get("repoType") or "model")
        content = {"errors": [{"message": e} for e in errors], "warnings": [{"message": w} for w in warnings]}
        self._json(400 if errors else 200, content)

    def repo_info(self, repo_type, repo_id, revision, query):
        meta = self._repo(repo_type, repo_id)
        sha = self.store.resolve(repo_type, repo_id, revision or "main")
        commit = self.store.commit_info(repo_type, repo_id, sha)
        card = None
        if "README.md" in commit["files"]:
            text = self.store.read(repo_type, repo_id, commit["files"]["README.md"]).decode("utf-8", "replace")
            match = re.match(r"^---\s*\n(.*?)\n---", text, re.S)
            card = yaml.safe_load(match.group(1)) if match else None
        info = {
            "id": repo_id, "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24], "sha": sha,
            "private": meta["private"], "disabled": False, "gated": False,
            "lastModified": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(commit["date"])),
            "siblings": [{"rfilename": p} for p in commit["files"]], "cardData": card, "tags": [],
        }
        if repo_type == "space":
            info["sdk"] = meta.get("sdk")
        self._json(200, info)

    def tree(self, repo_type, repo_id, revision, subpath, query):
        self._repo(repo_type, repo_id)
        sha = self.store.resolve(repo_type, repo_id, revision)
        files = self.store.commit_info(repo_type, repo_id, sha)["files"]
        recursive = (query.get("recursive") or ["false"])[0].lower() == "true"
        prefix = (subpath.strip("/") + "/") if subpath else ""
        entries, folders = [], {}
        for path, oid in files.items():
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix):]
            if "/" in rest and not recursive:
                folders.setdefault(prefix + rest.split("/")[0], None)
                continue
            size = (self.store.path(repo_type, repo_id) / "blobs" / oid).stat().st_size
            entries.append({"type": "file", "oid": oid, "size": size, "path": path})
        if subpath and not entries and not folders:
            raise HubError(404, f"{subpath} does not exist at {revision}", "EntryNotFound")
        self._json(200, [{"type": "directory", "oid": "0" * 40, "size": 0, "path": p} for p in folders] + entries)

    def refs(self, repo_type, repo_id, query):
        self._repo(repo_type, repo_id)
        branches = [{"name": name, "ref": f"refs/heads/{name}", "targetCommit": sha}
                    for name, sha in self.store.refs(repo_type, repo_id).items()]
        self._json(200, {"branches": branches, "tags": [], "converts": []})

    def resolve(self, repo_type, repo_id, revision, filename, query):
        repo_type = repo_type[:-1] if repo_type else "model"
        self._repo(repo_type, repo_id)
        sha = self.store.resolve(repo_type, repo_id, revision)
        files = self.store.commit_info(repo_type, repo_id, sha)["files"]
        if filename not in files:
            raise HubError(404, f"Entry not found: {filename} at {revision} in {repo_id}", "EntryNotFound")
        oid = files[filename]
        content = self.store.read(repo_type, repo_id, oid)
        headers = {"X-Repo-Commit": sha, "ETag": f'"{oid}"', "Content-Length": str(len(content))}
        self._send(200, content, headers, content_type="application/octet-stream")


TYPE = r"(model|dataset|space)s"
REPO = r"([^/]+/[^/]+)"
ROUTES = {
    "POST": [
        (re.compile(r"/api/repos/create"), HubHandler.create_repo),
        (re.compile(r"/api/validate-yaml"), HubHandler.validate_yaml),
        (re.compile(rf"/api/{TYPE}/{REPO}/branch/([^/]+)"), HubHandler.create_branch),
        (re.compile(rf"/api/{TYPE}/{REPO}/preupload/([^/]+)"), HubHandler.preupload),
        (re.compile(rf"/api/{TYPE}/{REPO}/commit/([^/]+)"), HubHandler.commit),
    ],
    "GET": [
        (re.compile(rf"/api/{TYPE}/{REPO}(?:/revision/([^/]+))?"), HubHandler.repo_info),
        (re.compile(rf"/api/{TYPE}/{REPO}/tree/([^/]+)(/.*)?"), HubHandler.tree),
        (re.compile(rf"/api/{TYPE}/{REPO}/refs"), HubHandler.refs),
        (re.compile(r"/(datasets|spaces)?/?([^/]+/[^/]+)/resolve/([^/]+)/(.+)"), HubHandler.resolve),
    ],
}
ROUTES["HEAD"] = [ROUTES["GET"][-1]]


class HubServer:
    """The test Hub on 127.0.0.1 in a background thread: `with HubServer(root) as hub: hub.url`."""

    def __init__(self, root: str | os.PathLike, port: int = 0):
        handler = type("BoundHubHandler", (HubHandler,), {"store": RepoStore(root)})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> HubServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", required=True, help="directory that stores the repositories")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    with HubServer(args.root, args.port) as hub:
        print(f"test Hub (a stand-in, loopback only) at {hub.url}; Ctrl-C stops it", flush=True)
        try:
            hub.thread.join()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
