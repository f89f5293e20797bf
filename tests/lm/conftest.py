"""Causal-LM fixtures, built once per session: a tiny random Llama with a real BPE tokenizer, and tiny corpora.

- `llama_dir`: `LlamaForCausalLM` (2 layers, 64 dims) with a byte-fallback-free BPE trained on 2,000 Bible lines
  of each language, wrapped in `PreTrainedTokenizerFast`, with chat special tokens but no chat template.
- `prompt_data`: 8 short en->es Bible pairs as parallel files (train = valid: the tests overfit them).
- `dialogue_data`: 4 conversations (one with two turns and a system message) as JSONL.
- `trained_lm`: the translation-prompt model trained on `prompt_data` (full fine-tuning), shared by the decoding
  tests.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import torch

SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<|user|>", "<|assistant|>", "<|system|>", "<|im_start|>", "<|im_end|>"]
PAIRS = [
    ("God spoke to Noah, saying,", "Dios habló a Noé, diciendo:"),
    ("Sarai was barren. She had no child.", "Sarai era estéril. No tenía hijo."),
    ("Abraham said, I will swear.", "Abraham dijo: Lo juraré."),
    ("Hadoram, Uzal, Diklah,", "Adoram, Uzal, Dicla,"),
    ("Obal, Abimael, Sheba,", "Obal, Abimael, Seba,"),
    ("Ephron answered Abraham.", "Efrón respondió a Abraham."),
    ("He said, I am Abraham's servant.", "Él dijo: Soy siervo de Abraham."),
    ("But Noah found favor.", "Pero Noé halló gracia."),
]
CONVERSATIONS = [
    [{"role": "user", "content": "Who spoke to Noah?"}, {"role": "assistant", "content": "God spoke to Noah."}],
    [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Was Sarai barren?"},
     {"role": "assistant", "content": "Yes, she had no child."}],
    [{"role": "user", "content": "Who found favor?"}, {"role": "assistant", "content": "Noah found favor."},
     {"role": "user", "content": "In whose eyes?"}, {"role": "assistant", "content": "In the eyes of the Lord."}],
    [{"role": "user", "content": "Who answered Abraham?"}, {"role": "assistant", "content": "Ephron answered him."}],
]


@pytest.fixture(scope="session")
def llama_dir(tmp_path_factory, bible_dir) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    lines = []
    for lang in ("en", "es"):
        with open(bible_dir / f"train.{lang}", encoding="utf-8") as file:
            lines += [line.strip() for line in itertools.islice(file, 2000)]
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    backend.train_from_iterator(lines, trainers.BpeTrainer(vocab_size=800, special_tokens=SPECIALS, initial_alphabet=["\n"],
                                                           show_progress=False))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>",
                                        pad_token="<pad>", unk_token="<unk>", additional_special_tokens=SPECIALS[4:])
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
                         bos_token_id=0, pad_token_id=1, eos_token_id=2, tie_word_embeddings=False)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    path = tmp_path_factory.mktemp("lm") / "tiny-llama"
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def prompt_data(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("lm-data")
    for split in ("train", "valid"):
        for index, lang in enumerate(("en", "es")):
            (directory / f"{split}.{lang}").write_text("".join(pair[index] + "\n" for pair in PAIRS), encoding="utf-8")
    return directory


@pytest.fixture(scope="session")
def dialogue_data(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("dialogue-data")
    for split in ("train", "valid"):
        (directory / f"{split}.jsonl").write_text(
            "".join(json.dumps({"messages": messages}) + "\n" for messages in CONVERSATIONS), encoding="utf-8")
    return directory


def lm_options(model_dir: Path, data_dir: Path, output: Path, *extra: str) -> list[str]:
    """pasero-train options of the tiny runs (one full batch per step, validation at the end)."""
    return ["--model", str(model_dir), "--data-dir", str(data_dir), "--model-dir", str(output),
            "--train-corpora", "train", "--valid-corpora", "valid", "--batch-size", "2048", "--max-len", "64",
            "--lr", "0.003", "--lr-scheduler", "constant", "--warmup", "0", "--label-smoothing", "0",
            "--valid-interval", "1000", "--log-interval", "20", "--metrics", "chrf", "--max-output-len", "24",
            "--cache-dir", str(output.parent / "cache"), "--no-onednn", *extra]


@pytest.fixture(scope="session")
def trained_lm(tmp_path_factory, llama_dir, prompt_data) -> Path:
    """en->es translation prompts, full fine-tuning, 60 steps, through recipes/train_lm.py (the other runs go
    through pasero-train --task)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_lm", Path(__file__).parents[2] / "recipes" / "train_lm.py")
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    output = tmp_path_factory.mktemp("lm-run") / "run"
    assert recipe.main(["-s", "en", "-t", "es", "--max-steps", "60", *lm_options(llama_dir, prompt_data, output)]) == 0
    return output
