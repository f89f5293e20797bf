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
