"""The test Hub (tests/hub_server.py, a loopback stand-in for huggingface.co) and models pushed to it.

Pushes run in this process with `endpoint=`/`token=`; pulls run in fresh processes (`run_py`) whose environment
points `huggingface_hub` at the test Hub (HF_ENDPOINT is read at import) with an empty cache (HF_HOME in tmp).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hub_server import HubServer
from tests.training.conftest import tiny_data_dir, tiny_tokenizer_dir  # noqa: F401  (fixtures: a tiny training run)

REPO_ROOT = Path(__file__).resolve().parents[2]
TOKEN = "hf_test_token"


@pytest.fixture(scope="session")
def hub(tmp_path_factory):
    with HubServer(tmp_path_factory.mktemp("hub-store")) as server:
        yield server


@pytest.fixture
def hub_env(hub, tmp_path):
    """Environment of a fresh process that talks to the test Hub with an empty Hugging Face cache."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(HF_ENDPOINT=hub.url, HF_TOKEN=TOKEN, HF_HOME=str(tmp_path / "hf-home"), HF_HUB_DISABLE_TELEMETRY="1",
               HF_HUB_DISABLE_PROGRESS_BARS="1", GRADIO_ANALYTICS_ENABLED="False", OMP_NUM_THREADS="1",
               PYTHONPATH=str(REPO_ROOT))
    return env


def run_py(code: str, env: dict, cwd=None, timeout: int = 300) -> dict:
    """Run `code` in a fresh interpreter; it prints one JSON object on its last stdout line, returned here."""
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_cli(args: list, env: dict, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run one of our console scripts (from this venv) in a fresh process."""
    executable = Path(sys.executable).parent / args[0]
    return subprocess.run([str(executable), *map(str, args[1:])], env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, fixtures_dir) -> Path:
    """The original-Pasero tiny en-es model converted, with its inference.yaml (languages, beam size)."""
    from pasero_hf.models.pasero.convert_pasero_checkpoint import convert_pasero_checkpoint

    output = convert_pasero_checkpoint(fixtures_dir / "pasero-tiny-en-es", tmp_path_factory.mktemp("tiny") / "model")
    shutil.copy(fixtures_dir / "pasero-tiny-en-es" / "inference.yaml", output / "inference.yaml")
    return output


@pytest.fixture(scope="session")
def pushed_tiny(hub, tiny_model_dir) -> str:
    """The tiny model pushed to the test Hub as `pasero/tiny-en-es` (main)."""
    from pasero_hf.hub import push_to_hub

    push_to_hub(tiny_model_dir, "pasero/tiny-en-es", endpoint=hub.url, token=TOKEN, license="bsd-3-clause",
                datasets=["bible-en-es"])
    return "pasero/tiny-en-es"


def repo_head(hub, repo_id: str, branch: str = "main", repo_type: str = "model") -> str:
    from huggingface_hub import HfApi

    return HfApi(endpoint=hub.url, token=TOKEN).repo_info(repo_id, repo_type=repo_type, revision=branch).sha
