"""`pasero-serve` as a user starts it: several models, each on its device, bound to 127.0.0.1."""

import os
import socket
import subprocess
import sys
import time

import httpx2 as httpx
import pytest


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_pasero_serve_command(pasero_tiny_dir, chat_dir, tmp_path):
    port = _free_port()
    command = [os.path.join(os.path.dirname(sys.executable), "pasero-serve"), f"{pasero_tiny_dir}:cpu",
               str(chat_dir), "--port", str(port), "--max-input-tokens", "100", "--log-level", "warning"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                models = httpx.get(f"http://127.0.0.1:{port}/list").json()
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"pasero-serve did not start: {process.communicate()[0]}") from None
                time.sleep(0.5)
        assert [(model["name"], model["device"]) for model in models] == [("tiny-en-es", "cpu"), ("tiny-chat", "cpu")]
        assert httpx.get(f"http://127.0.0.1:{port}/info").json()["max_input_tokens"] == 100
        # bound to loopback only: the machine's other addresses refuse
        address = socket.gethostbyname(socket.gethostname())
        if not address.startswith("127."):
            with pytest.raises(OSError):
                socket.create_connection((address, port), timeout=2).close()
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_pasero_serve_bad_model(tmp_path):
    result = subprocess.run([os.path.join(os.path.dirname(sys.executable), "pasero-serve"), str(tmp_path / "nope")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "model directory not found" in result.stderr and "nope" in result.stderr


@pytest.mark.slow
def test_pasero_serve_with_the_ctranslate2_backend(pasero_tiny_dir, pasero_generator, tmp_path):
    """`--backend ctranslate2` on a PyTorch directory: exported once into the cache, then served; TGI answers and
    streams equal the PyTorch decoder's (greedy search is the same on both engines)."""
    from huggingface_hub import InferenceClient

    port = _free_port()
    command = [os.path.join(os.path.dirname(sys.executable), "pasero-serve"), str(pasero_tiny_dir), "--backend",
               "ctranslate2", "--port", str(port), "--log-level", "warning"]
    env = {**os.environ, "PASERO_HF_CACHE": str(tmp_path / "cache")}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/health").raise_for_status()
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"pasero-serve did not start: {process.communicate()[0]}") from None
                time.sleep(0.5)
        assert [path.name for path in (tmp_path / "cache").iterdir()] == ["ctranslate2"]
        client = InferenceClient(base_url=f"http://127.0.0.1:{port}")
        for sentence in ("And God said, Let there be light: and there was light.", "In the beginning"):
            expected = pasero_generator.decode(sentence, beam_size=1, max_output_len=40)[0][0]
            # top-k 1 sampling is greedy search (TGI's do_sample=False means the model's default beam search)
            assert client.text_generation(sentence, max_new_tokens=40, do_sample=True, top_k=1,
                                          seed=1) == expected["detok"]
            pieces = list(client.text_generation(sentence, max_new_tokens=40, stream=True, top_k=1, seed=1,
                                                 do_sample=True))
            assert "".join(pieces) == expected["detok"] and len(pieces) == len(expected["tokens"])
    finally:
        process.terminate()
        process.wait(timeout=30)
