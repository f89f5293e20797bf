"""Push a model (or its adapters alone) and the Gradio Space to the Hugging Face Hub, one commit per push.

A push uploads everything a user needs to run the model without the machine it was trained on: safetensors
weights, config and remote code (`auto_map`), tokenizer files, generation_config.json, inference.yaml, the run's
training.yaml and training curve, test scores, and a model card rendered from `model_cards/`. Everything travels in
ONE commit whose parent is the branch head read before the push, so a failed or concurrent push never leaves a
half-uploaded model as the head, and files of an older push that the new one lacks are deleted in the same commit.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from pasero_hf.hub.cards import CardError, check_card, render_model_card, run_directory
from pasero_hf.models.locate import ADAPTERS_FILE, ADAPTERS_INFO, looks_like_repo_id, resolve_model_dir

SPACE_DIR = Path(__file__).resolve().parents[2] / "spaces" / "pasero-translate"
# never published: trainer pickles and state, partial files, the card (rendered anew)
EXCLUDED = ["training_args.bin", "optimizer.pt", "scheduler.pt", "rng_state*.pth", "trainer_state.json",
            "data_state.json", "checkpoint_complete.json", "*.tmp", "*.partial", "README.md", ".*"]
RUN_FILES = ["training.yaml", "inference.yaml", "training_curve.png", "eval_results.json"]
KEPT_REMOTE_FILES = {".gitattributes"}


class PushError(RuntimeError):
    """A push that cannot be made: nothing was committed. The message names the repo, revision or file."""


def _excluded(name: str) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in EXCLUDED)


def local_model_dir(model_dir: str | os.PathLike) -> Path:
    """The local directory to push (a LoRA directory has adapter_config.json instead of config.json)."""
    path = Path(model_dir)
    if path.is_dir() and (path / "adapter_config.json").is_file() and not (path / "config.json").is_file():
        return path
    if not path.is_dir():
        raise PushError(f"model directory not found: {path} (pushing needs a local directory)")
    try:
        return resolve_model_dir(path)
    except FileNotFoundError as error:
        raise PushError(str(error)) from None


def collect_files(model_dir: Path, *, adapters_only: bool = False, base_model: str | None = None,
                  workdir: Path) -> dict[str, Path]:
    """{path in repo: local file} of a push (without the card); adapter files are written under `workdir`."""
    files = {p.name: p for p in sorted(model_dir.iterdir()) if p.is_file() and not _excluded(p.name)}
    run_dir = run_directory(model_dir)
    for name in RUN_FILES:
        if name not in files and run_dir is not None and (run_dir / name).is_file():
            files[name] = run_dir / name
    if adapters_only:
        return _adapter_files(model_dir, files, base_model, workdir)
    weights = [name for name in files if name.endswith(".safetensors")]
    if not weights:
        pickled = [name for name in files if name.endswith((".bin", ".pt", ".pth"))]
        hint = (f" ({', '.join(pickled)} are pickles: load and save_pretrained() it again to get safetensors)"
                if pickled else "")
        if (model_dir / "adapter_config.json").is_file():
            hint = " (a LoRA directory: push it with --adapters-only --base-model BASE_REPO)"
        raise PushError(f"{model_dir}: no model weights (*.safetensors) to push{hint}")
    for name in [n for n in files if n.endswith((".bin", ".pt", ".pth"))]:
        del files[name]  # safetensors only: no pickles on the Hub
    _check_remote_code(model_dir, files)
    return files


def _check_remote_code(model_dir: Path, files: dict[str, Path]) -> None:
    """Every module named in config.json's `auto_map` must travel with it (trust_remote_code loads it)."""
    config = json.loads((model_dir / "config.json").read_text())
    for target in (config.get("auto_map") or {}).values():
        for reference in target if isinstance(target, list) else [target]:
            if reference:
                module = reference.split("--")[-1].rsplit(".", 1)[0] + ".py"
                if module not in files:
                    raise PushError(f"{model_dir}/config.json: auto_map names {reference!r} but {module} is missing "
                                    "(re-save the model after `import pasero_hf`)")


def _adapter_files(model_dir: Path, files: dict[str, Path], base_model: str | None, workdir: Path) -> dict[str, Path]:
    """LoRA: adapter_config.json + adapter_model.safetensors; bottleneck adapters: their tensors alone
    (adapters.safetensors), config.json and pasero_adapters.json naming the base repo they load onto; bottleneck
    adapters of a pretrained model (no config.json): adapters.safetensors and pasero_adapters.json as they are."""
    if (model_dir / ADAPTERS_INFO).is_file() and not (model_dir / "config.json").is_file():
        return _pretrained_adapter_files(model_dir, files, base_model, workdir)
    if base_model is None or not looks_like_repo_id(base_model):
        raise PushError(f"{model_dir}: pushing adapters alone needs --base-model REPO_ID, the Hub repo of the base "
                        f"model they load onto (got {base_model!r})")
    if (model_dir / "adapter_config.json").is_file():
        adapter_config = json.loads((model_dir / "adapter_config.json").read_text())
        adapter_config["base_model_name_or_path"] = base_model
        if adapter_config.get("task_type") is None:
            # AutoPeftModelForSeq2SeqLM then loads the base through AutoModelForSeq2SeqLM (pasero_hf or remote code)
            # instead of refusing the `auto_mapping` to a class of a package outside its import allowlist
            adapter_config["task_type"] = "SEQ_2_SEQ_LM"
            adapter_config.pop("auto_mapping", None)
        path = workdir / "adapter_config.json"
        path.write_text(json.dumps(adapter_config, indent=2))
        files["adapter_config.json"] = path
        if "adapter_model.safetensors" not in files:
            raise PushError(f"{model_dir}: no adapter_model.safetensors (LoRA weights) to push")
        return {name: p for name, p in files.items() if name != "model.safetensors"}
    from safetensors.torch import load_file, save_file

    config = json.loads((model_dir / "config.json").read_text())
    adapters = {side: config.get(f"{side}_adapters") or [] for side in ("encoder", "decoder")}
    weights = [p for name, p in files.items() if name.endswith(".safetensors")]
    state = {}
    for path in weights:
        state.update({k: v for k, v in load_file(str(path)).items() if "adapters" in k.split(".")})
    if not state or not any(adapters.values()):
        raise PushError(f"{model_dir}: no adapter weights (neither adapter_config.json for LoRA nor Pasero "
                        "bottleneck adapters in config.json): push the whole model without --adapters-only")
    save_file(state, str(workdir / ADAPTERS_FILE), metadata={"format": "pt"})
    (workdir / ADAPTERS_INFO).write_text(json.dumps({"base_model": base_model, **{
        f"{side}_adapters": names for side, names in adapters.items()}}, indent=2))
    files = {name: p for name, p in files.items() if not name.endswith(".safetensors") and name != "model.safetensors.index.json"}
    files[ADAPTERS_FILE] = workdir / ADAPTERS_FILE
    files[ADAPTERS_INFO] = workdir / ADAPTERS_INFO
    return files


def _pretrained_adapter_files(model_dir: Path, files: dict[str, Path], base_model: str | None,
                              workdir: Path) -> dict[str, Path]:
    """A fine-tuning run's adapter directory: pasero_adapters.json then names `base_model` (default: the Hub repo id
    it was trained from)."""
    info = json.loads((model_dir / ADAPTERS_INFO).read_text())
    trained_from = str(info.get("base_model") or "")
    base_model = base_model or (trained_from if looks_like_repo_id(trained_from)
                                and not Path(trained_from).exists() else None)
    if base_model is None or not looks_like_repo_id(base_model):
        raise PushError(f"{model_dir}: these adapters were trained on {trained_from or 'an unnamed model'}: pushing "
                        "them alone needs --base-model REPO_ID, the Hub repo of that base model")
    if ADAPTERS_FILE not in files:
        raise PushError(f"{model_dir}: no {ADAPTERS_FILE} (the adapter weights) to push")
    (workdir / ADAPTERS_INFO).write_text(json.dumps({**info, "base_model": base_model}, indent=2) + "\n")
    return {**files, ADAPTERS_INFO: workdir / ADAPTERS_INFO}


def _api(token: str | None, endpoint: str | None):
    from huggingface_hub import HfApi

    return HfApi(endpoint=endpoint, token=token)


def _create_repo(api, repo_id: str, *, repo_type: str, private: bool, exist_ok: bool, **kwargs) -> None:
    from huggingface_hub.errors import HfHubHTTPError

    try:
        api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=False, **kwargs)
    except HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else None
        if status != 409:
            raise PushError(f"cannot create {repo_type} repo {repo_id}: {error}") from None
        if not exist_ok:
            raise PushError(f"{repo_type} repo {repo_id} already exists on the Hub: pass --exist-ok (exist_ok=True) "
                            "to push a new commit over it") from None


def commit_files(api, repo_id: str, files: dict[str, Path | bytes], *, repo_type: str = "model",
                 revision: str | None = None, commit_message: str, commit_description: str | None = None):
    """One commit that makes the branch hold exactly `files` (plus .gitattributes), based on its current head."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete
    from huggingface_hub.errors import HfHubHTTPError, RevisionNotFoundError

    branch = revision or "main"
    try:
        if branch != "main":
            api.create_branch(repo_id, branch=branch, repo_type=repo_type, exist_ok=True)
        head = api.repo_info(repo_id, repo_type=repo_type, revision=branch)
    except RevisionNotFoundError:
        raise PushError(f"{repo_id}: revision {branch!r} not found") from None
    except HfHubHTTPError as error:
        raise PushError(f"{repo_id}@{branch}: {error}") from None
    remote = {sibling.rfilename for sibling in head.siblings or []}
    operations: list[Any] = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=source if isinstance(source, bytes)
                                                else str(source)) for name, source in sorted(files.items())]
    operations += [CommitOperationDelete(path_in_repo=name) for name in sorted(remote - set(files) - KEPT_REMOTE_FILES)]
    try:
        return api.create_commit(repo_id, operations, commit_message=commit_message, repo_type=repo_type,
                                 commit_description=commit_description, revision=branch, parent_commit=head.sha)
    except ValueError as error:  # README metadata rejected by the Hub's validate-yaml
        raise PushError(f"{repo_id}@{branch}: README.md rejected, nothing was committed: {error}") from None
    except HfHubHTTPError as error:
        raise PushError(f"{repo_id}@{branch}: commit failed, nothing was committed: {error}") from None


def push_to_hub(model_dir: str | os.PathLike, repo_id: str, *, private: bool = False, revision: str | None = None,
                commit_message: str | None = None, exist_ok: bool = False, adapters_only: bool = False,
                base_model: str | None = None, token: str | None = None, endpoint: str | None = None,
                **card_options: Any):
    """Upload a model directory (or, with `adapters_only`, its adapters/LoRA weights) to Hub repo `repo_id`.

    `model_dir` is a `save_pretrained` directory (a training run's `model_best`, a converted or pruned model);
    training.yaml, inference.yaml and training_curve.png of the run around it travel too. The card is rendered from
    `model_cards/` (`card_options`: license, datasets, tags, lang_pairs, data_citation, template_path).
    Returns the `huggingface_hub.CommitInfo` of the one commit.

    Raises:
        PushError: no weights, missing remote code, existing repo without `exist_ok`, card or commit rejected.
    """
    if not looks_like_repo_id(repo_id) or "/" not in repo_id:
        raise PushError(f"invalid repo id {repo_id!r}: expected USER_OR_ORG/NAME")
    model_dir = local_model_dir(model_dir)
    with tempfile.TemporaryDirectory(prefix="pasero-push-") as workdir:
        files: dict[str, Path | bytes] = dict(collect_files(model_dir, adapters_only=adapters_only,
                                                            base_model=base_model, workdir=Path(workdir)))
        try:
            if adapters_only and ADAPTERS_INFO in files and base_model is None:  # as pasero_adapters.json names it
                base_model = json.loads(Path(files[ADAPTERS_INFO]).read_text())["base_model"]
            card = render_model_card(model_dir, repo_id, kind="adapters" if adapters_only else None,
                                     base_model=base_model, **card_options)
            check_card(card)
        except CardError as error:
            raise PushError(f"model card of {model_dir}: {error}") from None
        files["README.md"] = str(card).encode("utf-8")
        api = _api(token, endpoint)
        _create_repo(api, repo_id, repo_type="model", private=private, exist_ok=exist_ok)
        what = "adapters" if adapters_only else "model"
        return commit_files(api, repo_id, files, revision=revision,
                            commit_message=commit_message or f"Upload {what} with pasero-hf",
                            commit_description=f"pushed from {model_dir.name} by pasero-push")


def space_files(model_repo: str, space_dir: Path = SPACE_DIR) -> dict[str, bytes]:
    """The Space's files, its README header naming `model_repo` (the model the app loads by default)."""
    files = {}
    for name in ("app.py", "requirements.txt", "README.md"):
        path = space_dir / name
        if not path.is_file():
            raise PushError(f"Space file missing: {path}")
        files[name] = path.read_bytes()
    readme = files["README.md"].decode("utf-8")
    readme, count = re.subn(r"(?m)^models:\n(?:  - .*\n)+", f"models:\n  - {model_repo}\n", readme, count=1)
    if not count:
        raise PushError(f"{space_dir / 'README.md'}: no `models:` list in its YAML header to point at {model_repo}")
    files["README.md"] = readme.encode("utf-8")
    return files


def push_space(space_id: str, model_repo: str, *, private: bool = False, exist_ok: bool = False,
               revision: str | None = None, commit_message: str | None = None, token: str | None = None,
               endpoint: str | None = None):
    """Publish `spaces/pasero-translate` as Gradio Space `space_id`, serving Hub model `model_repo`."""
    for name, value in (("Space", space_id), ("model", model_repo)):
        if not looks_like_repo_id(value) or "/" not in value:
            raise PushError(f"invalid {name} repo id {value!r}: expected USER_OR_ORG/NAME")
    files = space_files(model_repo)
    api = _api(token, endpoint)
    _create_repo(api, space_id, repo_type="space", private=private, exist_ok=exist_ok, space_sdk="gradio",
                 space_variables=[{"key": "PASERO_MODEL", "value": model_repo}])
    return commit_files(api, space_id, dict(files), repo_type="space", revision=revision,
                        commit_message=commit_message or f"Pasero translation Space for {model_repo}")

