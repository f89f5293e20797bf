"""Push to the test Hub, pull by repo id in fresh processes with an empty cache, decode identically; offline use
of the cache; remote code without pasero_hf; bad input (unknown repo or revision, no network, no weights, existing
repo, rejected card) with nothing half-committed."""

import json

import pytest
from huggingface_hub import HfApi

from tests.hub.conftest import TOKEN, repo_head, run_cli, run_py

N_LINES = 5


@pytest.fixture(scope="module")
def test_lines(bible_dir, tmp_path_factory):
    """The first Bible test lines and what the original Pasero decoded for them (beam 5, the model's default)."""
    path = tmp_path_factory.mktemp("lines") / "test.en"
    sources = (bible_dir / "test.en").read_text(encoding="utf-8").splitlines()[:N_LINES]
    path.write_text("\n".join(sources) + "\n", encoding="utf-8")
    return path


def expected_beam5(fixtures_dir) -> list[str]:
    return (fixtures_dir / "pasero-tiny-en-es" / "test.beam5.es").read_text(encoding="utf-8").splitlines()[:N_LINES]


def test_pushed_repo_holds_everything_in_one_commit(hub, pushed_tiny, tiny_model_dir):
    api = HfApi(endpoint=hub.url, token=TOKEN)
    files = set(api.list_repo_files(pushed_tiny))
    assert {"model.safetensors", "config.json", "generation_config.json", "inference.yaml", "bpecodes", "dict.txt",
            "tokenizer_config.json", "modeling_pasero.py", "configuration_pasero.py", "tokenization_pasero.py",
            "README.md", ".gitattributes"} <= files
    assert not any(name.endswith((".bin", ".pt", ".pth")) for name in files)
    auto_map = json.loads(open(api.hf_hub_download(pushed_tiny, "config.json")).read())["auto_map"]
    assert auto_map["AutoModelForSeq2SeqLM"] == "modeling_pasero.PaseroForConditionalGeneration"
    # the push is one commit on top of the repo's initial commit
    refs = api.list_repo_refs(pushed_tiny)
    assert [b.name for b in refs.branches] == ["main"]
    store = hub.httpd.RequestHandlerClass.store
    head = store.commit_info("model", pushed_tiny, refs.branches[0].target_commit)
    assert store.commit_info("model", pushed_tiny, head["parent"])["parent"] is None
    assert set(head["files"]) == files


@pytest.mark.slow
def test_pull_by_repo_id_in_fresh_process_decodes_like_pasero(hub_env, pushed_tiny, test_lines, tmp_path,
                                                              fixtures_dir):
    output = tmp_path / "out.es"
    result = run_cli(["pasero-decode", pushed_tiny, "-i", test_lines, "-o", output, "-t", "es"], hub_env)
    assert result.returncode == 0, result.stderr
    assert output.read_text(encoding="utf-8").splitlines() == expected_beam5(fixtures_dir)
    # the cache is warm now: offline mode decodes from it, in another fresh process
    offline = dict(hub_env, HF_HUB_OFFLINE="1", HF_ENDPOINT="http://127.0.0.1:9")
    code = f"""
import json
from pasero_hf.generation import TextGenerator
generator = TextGenerator.from_pretrained({pushed_tiny!r})
lines = open({str(test_lines)!r}, encoding="utf-8").read().splitlines()
print(json.dumps([hyps[0]["detok"] for hyps in generator.decode(*lines, target_lang="es")]))
"""
    assert run_py(code, offline) == expected_beam5(fixtures_dir)


@pytest.mark.slow
def test_auto_classes_load_a_repo_id(hub_env, pushed_tiny, tiny_model_dir):
    """With pasero_hf imported, and with trust_remote_code=True where pasero_hf cannot be imported at all."""
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    import pasero_hf.models  # noqa: F401  (registers the Auto classes)

    sentence = "In the beginning God created the heaven and the earth."
    model = AutoModelForSeq2SeqLM.from_pretrained(tiny_model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        expected = model.generate(**tokenizer([sentence], return_tensors="pt"), num_beams=1, max_new_tokens=40)
    expected = expected[0].tolist()

    load = f"""
model = AutoModelForSeq2SeqLM.from_pretrained({pushed_tiny!r}{{kw}}).eval()
tokenizer = AutoTokenizer.from_pretrained({pushed_tiny!r}{{kw}})
ids = model.generate(**tokenizer([{sentence!r}], return_tensors="pt"), num_beams=1, max_new_tokens=40)[0].tolist()
print(json.dumps({{{{"ids": ids, "model": type(model).__module__, "tokenizer": type(tokenizer).__module__}}}}))
"""
    with_pasero = run_py("import json, pasero_hf.models\nfrom transformers import AutoModelForSeq2SeqLM, AutoTokenizer\n"
                         + load.format(kw=""), hub_env)
    assert with_pasero["ids"] == expected and with_pasero["model"].startswith("pasero_hf.")
    blocked = """
import importlib.abc, json, sys
class NoPasero(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "pasero_hf" or name.startswith("pasero_hf."):
            raise ImportError("pasero_hf is blocked in this process")
sys.meta_path.insert(0, NoPasero())
try:
    import pasero_hf
    raise SystemExit("pasero_hf imported")
except ImportError:
    pass
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
"""
    remote = run_py(blocked + load.format(kw=", trust_remote_code=True"), hub_env)
    assert remote["ids"] == expected
    assert remote["model"].startswith("transformers_modules.") and remote["tokenizer"].startswith("transformers_modules.")


@pytest.mark.slow
def test_push_to_a_branch_and_pull_that_revision(hub, hub_env, pushed_tiny, tiny_model_dir, tmp_path):
    changed = tmp_path / "model"
    import shutil

    shutil.copytree(tiny_model_dir, changed)
    (changed / "inference.yaml").write_text("source_langs: [en]\ntarget_langs: [es]\nbeam_size: 1\n")
    main_before = repo_head(hub, pushed_tiny)
    result = run_cli(["pasero-push", changed, pushed_tiny, "--revision", "greedy", "--exist-ok",
                      "--commit-message", "greedy decoding by default"], hub_env)
    assert result.returncode == 0, result.stderr
    assert repo_head(hub, pushed_tiny) == main_before
    code = f"""
import json
from pasero_hf.generation import TextGenerator
main = TextGenerator.from_pretrained({pushed_tiny!r})
branch = TextGenerator.from_pretrained({pushed_tiny!r}, revision="greedy")
print(json.dumps([main.options.beam_size, branch.options.beam_size]))
"""
    assert run_py(code, hub_env) == [5, 1]


@pytest.mark.slow
def test_pull_errors_name_the_repo_and_revision(hub, hub_env, pushed_tiny):
    code = f"""
import json
from pasero_hf.models.locate import resolve_model_dir
errors = []
for name, revision in [("pasero/nope", None), ({pushed_tiny!r}, "v9")]:
    try:
        resolve_model_dir(name, revision=revision)
    except FileNotFoundError as error:
        errors.append(str(error))
print(json.dumps(errors))
"""
    unknown_repo, unknown_revision = run_py(code, hub_env)
    assert "pasero/nope" in unknown_repo and "neither a local directory nor a Hub model repo" in unknown_repo
    assert "revision 'v9' not found" in unknown_revision and pushed_tiny in unknown_revision
    # no network and nothing cached (empty HF_HOME): pasero-decode says so and names the repo
    unreachable = dict(hub_env, HF_ENDPOINT="http://127.0.0.1:9")
    result = run_cli(["pasero-decode", pushed_tiny, "-t", "es"], unreachable)
    assert result.returncode == 1
    assert f"{pushed_tiny}@main: the Hub cannot be reached" in result.stderr and "not in the cache" in result.stderr
    offline = dict(hub_env, HF_HUB_OFFLINE="1")
    result = run_cli(["pasero-decode", pushed_tiny, "-t", "es"], offline)
    assert result.returncode == 1 and "not in the cache" in result.stderr


def test_push_errors_leave_the_repo_untouched(hub, hub_env, pushed_tiny, tiny_model_dir, tmp_path):
    import shutil

    from pasero_hf.hub import PushError, push_to_hub

    head = repo_head(hub, pushed_tiny)
    # an existing repo without --exist-ok
    result = run_cli(["pasero-push", tiny_model_dir, pushed_tiny], hub_env)
    assert result.returncode == 1 and f"model repo {pushed_tiny} already exists" in result.stderr
    assert "--exist-ok" in result.stderr
    # a directory without weights
    empty = tmp_path / "no-weights"
    shutil.copytree(tiny_model_dir, empty, ignore=shutil.ignore_patterns("*.safetensors"))
    with pytest.raises(PushError, match=f"{empty}: no model weights"):
        push_to_hub(empty, pushed_tiny, exist_ok=True, endpoint=hub.url, token=TOKEN)
    # remote code named by auto_map but missing
    no_code = tmp_path / "no-code"
    shutil.copytree(tiny_model_dir, no_code, ignore=shutil.ignore_patterns("modeling_pasero.py"))
    with pytest.raises(PushError, match=f"{no_code}/config.json: auto_map names .* but modeling_pasero.py is missing"):
        push_to_hub(no_code, pushed_tiny, exist_ok=True, endpoint=hub.url, token=TOKEN)
    # a card with invalid metadata (caught by the local check before the Hub's validate-yaml): nothing is committed
    template = tmp_path / "bad.md"
    template.write_text("---\n{{ card_data }}\npipeline_tag: translate-please\n---\n# {{ model_name }}\n")
    with pytest.raises(PushError, match=r"model card of .*: model card metadata: pipeline_tag is 'translate-please'"):
        push_to_hub(tiny_model_dir, pushed_tiny, exist_ok=True, endpoint=hub.url, token=TOKEN, template_path=template)
    # a commit based on an outdated head (another push landed meanwhile) is refused whole
    store = hub.httpd.RequestHandlerClass.store
    with pytest.raises(Exception, match="412|A commit has happened"):
        from huggingface_hub import CommitOperationAdd

        HfApi(endpoint=hub.url, token=TOKEN).create_commit(
            pushed_tiny, [CommitOperationAdd("x.txt", b"x")], commit_message="stale", parent_commit=store.commit_info(
                "model", pushed_tiny, head)["parent"])
    assert repo_head(hub, pushed_tiny) == head
    # a model dir that does not exist, a bad repo id
    with pytest.raises(PushError, match="model directory not found"):
        push_to_hub(tmp_path / "nowhere", "pasero/x", endpoint=hub.url, token=TOKEN)
    with pytest.raises(PushError, match="invalid repo id 'no-namespace'"):
        push_to_hub(tiny_model_dir, "no-namespace", endpoint=hub.url, token=TOKEN)
