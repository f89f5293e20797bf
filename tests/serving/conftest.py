"""Servers for the serving tests: real uvicorn on loopback, in a thread, with real models.

- `pasero_tiny_dir`: the original-Pasero tiny en-es model converted with `convert_pasero_checkpoint`.
- `chat_dir`: a tiny random Llama-style causal LM with a real BPE tokenizer trained on the bundled Bible text, wrapped
  in `PreTrainedTokenizerFast` with a chat template.
- `server`: both models, default limits; `limited_server`: the Pasero model with small limits and a long batching
  window (bursts overlap).
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
from pathlib import Path

import pytest
import torch

CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|> {{ message['content'] }}</s> {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@pytest.fixture(scope="session")
def pasero_tiny_dir(tmp_path_factory, fixtures_dir) -> Path:
    from pasero_hf.models.pasero.convert_pasero_checkpoint import convert_pasero_checkpoint

    return convert_pasero_checkpoint(fixtures_dir / "pasero-tiny-en-es", tmp_path_factory.mktemp("serve") / "tiny-en-es")


@pytest.fixture(scope="session")
def chat_dir(tmp_path_factory, bible_dir) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    with open(bible_dir / "train.en", encoding="utf-8") as file:
        lines = [line.strip() for line in itertools.islice(file, 2000)]
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<|user|>", "<|assistant|>", "<|system|>"]
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    backend.train_from_iterator(lines, trainers.BpeTrainer(vocab_size=500, special_tokens=specials,
                                                           show_progress=False))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>",
                                        pad_token="<pad>", unk_token="<unk>",
                                        additional_special_tokens=specials[4:])
    tokenizer.chat_template = CHAT_TEMPLATE
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                         bos_token_id=0, pad_token_id=1, eos_token_id=2, initializer_range=0.5)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    path = tmp_path_factory.mktemp("serve") / "tiny-chat"
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RunningServer:
    """uvicorn serving `app` on 127.0.0.1 in a thread; `url` is its base URL."""

    def __init__(self, app):
        import uvicorn

        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = app
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=30)


def start_server(specs, **limits):
    from pasero_hf.serving import ServerLimits, create_app, load_workers

    server_limits = ServerLimits(**limits)
    return RunningServer(create_app(load_workers([str(spec) for spec in specs], server_limits), server_limits))


@pytest.fixture(scope="session")
def server_factory():
    """`start_server(model_dirs, **limits)`: a context manager running a server with these models and limits."""
    return start_server


@pytest.fixture(scope="session")
def server(pasero_tiny_dir, chat_dir):
    with start_server([f"{pasero_tiny_dir}:cpu", chat_dir]) as running:
        yield running


@pytest.fixture(scope="session")
def limited_server(pasero_tiny_dir):
    with start_server([pasero_tiny_dir], max_concurrent_requests=2, batch_wait_ms=300, max_input_tokens=40,
                      max_body_bytes=2000, max_inputs=3, max_new_tokens=50) as running:
        yield running


@pytest.fixture(scope="session")
def pasero_generator(pasero_tiny_dir):
    """A TextGenerator of its own (the server's decodes in its worker thread): what pasero-decode uses."""
    from pasero_hf.generation import TextGenerator

    return TextGenerator.from_pretrained(pasero_tiny_dir)


@pytest.fixture(scope="session")
def chat_generator(chat_dir):
    from pasero_hf.generation import TextGenerator

    return TextGenerator.from_pretrained(chat_dir)
