"""The Gradio Space (spaces/pasero-translate): published with `pasero-push --space`, run on loopback with a model
pulled by repo id, called through gradio_client (/translate) and used in headless Chromium."""

import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
import yaml
from huggingface_hub import HfApi

from tests.hub.conftest import REPO_ROOT, TOKEN, run_cli

SENTENCE = "And God said, Let there be light: and there was light."


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_push_space_publishes_valid_space_metadata(hub, hub_env, pushed_tiny):
    result = run_cli(["pasero-push", "--space", "pasero/translate", "--model", pushed_tiny], hub_env)
    assert result.returncode == 0, result.stderr
    api = HfApi(endpoint=hub.url, token=TOKEN)
    assert set(api.list_repo_files("pasero/translate", repo_type="space")) >= {"app.py", "requirements.txt",
                                                                                "README.md"}
    info = api.repo_info("pasero/translate", repo_type="space")
    assert info.sdk == "gradio"
    meta = info.card_data.to_dict()
    assert meta["models"] == [pushed_tiny] and meta["app_file"] == "app.py" and meta["sdk"] == "gradio"
    import gradio

    assert meta["sdk_version"] == gradio.__version__ and len(meta["short_description"]) <= 60
    result = run_cli(["pasero-push", "--space", "pasero/translate", "--model", pushed_tiny], hub_env)
    assert result.returncode == 1 and "space repo pasero/translate already exists" in result.stderr


@pytest.fixture
def space_app(hub_env, pushed_tiny):
    """spaces/pasero-translate/app.py on 127.0.0.1, serving the tiny model pulled by repo id."""
    port = free_port()
    env = dict(hub_env, PASERO_MODEL=pushed_tiny, GRADIO_SERVER_PORT=str(port))
    process = subprocess.Popen([sys.executable, str(REPO_ROOT / "spaces" / "pasero-translate" / "app.py")], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                with urllib.request.urlopen(url + "/", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise AssertionError(f"the Space app did not start:\n{process.stdout.read()[-3000:]}")
            time.sleep(1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def expected(tiny_model_dir):
    from pasero_hf.generation import TextGenerator

    generator = TextGenerator.from_pretrained(tiny_model_dir)
    return generator.decode(SENTENCE, source_lang="en", target_lang="es", beam_size=5, n_best=3,
                            return_scores=True)[0]


@pytest.mark.slow
def test_space_app_api_and_page(space_app, expected, browser_page, artifacts_dir):
    from gradio_client import Client

    client = Client(space_app, verbose=False)
    translation, nbest, plot = client.predict(SENTENCE, "en", "es", 5, 3, False, 1.0, api_name="/translate")
    assert translation == expected[0]["detok"]
    rows = nbest["data"]
    assert [row[2] for row in rows] == [hyp["detok"] for hyp in expected]
    assert [row[1] for row in rows] == [round(float(hyp["score"]), 4) for hyp in expected]
    assert plot is not None
    sampled, _, _ = client.predict(SENTENCE, "en", "es", 1, 1, True, 0.7, api_name="/translate")
    assert isinstance(sampled, str)

    page = browser_page
    page.goto(space_app, wait_until="networkidle")
    page.get_by_label("Source text").fill(SENTENCE)
    page.get_by_role("button", name="Translate").click()
    page.wait_for_function(
        "expected => document.querySelector('#translation textarea').value === expected", arg=translation,
        timeout=60000)
    page.wait_for_timeout(1000)  # let the heatmap draw
    page.screenshot(path=str(artifacts_dir / "space_translate.png"), full_page=True)
    docs_image = REPO_ROOT / "docs" / "images" / "space_translate.png"
    if os.environ.get("PASERO_UPDATE_DOCS_IMAGES"):
        page.screenshot(path=str(docs_image), full_page=True)
    assert docs_image.is_file()


def test_space_readme_header_is_valid_space_metadata(hub, monkeypatch):
    from huggingface_hub import SpaceCard

    card = SpaceCard.load(REPO_ROOT / "spaces" / "pasero-translate" / "README.md")
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", hub.url)
    card.validate("space")
    meta = yaml.safe_load(card.content.split("---")[1])
    assert {"title", "sdk", "sdk_version", "app_file", "models", "license", "short_description"} <= set(meta)
