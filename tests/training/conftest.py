"""Tiny real inputs for the training tests: a slice of the bundled Bible corpus and a BPE tokenizer trained on it."""

from pathlib import Path

import pytest
import yaml

TRAIN_LINES = 300
VALID_LINES = 12


def write_slice(source: Path, target: Path, lines: int, start: int = 0) -> None:
    with open(source, encoding="utf-8") as f:
        kept = f.read().splitlines()[start:start + lines]
    target.write_text("\n".join(kept) + "\n", encoding="utf-8")


@pytest.fixture(scope="session")
def tiny_data_dir(bible_dir, tmp_path_factory) -> Path:
    """train.{en,es} (300 lines) and valid.{en,es} (12 lines) from the Bible corpus."""
    directory = tmp_path_factory.mktemp("tiny-bible")
    for lang in ("en", "es"):
        write_slice(bible_dir / f"train.{lang}", directory / f"train.{lang}", TRAIN_LINES)
        write_slice(bible_dir / f"valid.{lang}", directory / f"valid.{lang}", VALID_LINES)
    return directory


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tiny_data_dir, tmp_path_factory) -> Path:
    """A 400-token BPE tokenizer (Hugging Face `tokenizers`) trained on the tiny corpus, saved for AutoTokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<s>", "<pad>", "</s>", "<unk>"])
    tokenizer.train([str(tiny_data_dir / "train.en"), str(tiny_data_dir / "train.es")], trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", tokenizer.token_to_id("</s>"))])
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", pad_token="<pad>",
                                      eos_token="</s>", unk_token="<unk>")
    directory = tmp_path_factory.mktemp("tiny-tokenizer")
    wrapped.save_pretrained(directory)
    return directory


def tiny_config_dict(data_dir: Path, tokenizer_dir: Path, model_dir: Path, **overrides) -> dict:
    """A flat training configuration for a 2-layer, 32-dim Pasero model on the tiny corpus."""
    config = {
        "data_dir": str(data_dir),
        "source_lang": "en",
        "target_lang": "es",
        "train_corpora": [{"paths": ["train"]}],
        "valid_corpora": [{"paths": ["valid"]}],
        "tokenizer": "hf",
        "tokenizer_path": str(tokenizer_dir),
        "arch": "transformer",
        "model_args": {"embed_dim": 32, "encoder_layers": 2, "decoder_layers": 2, "encoder_attention_heads": 2,
                       "decoder_attention_heads": 2, "encoder_ffn_dim": 64, "decoder_ffn_dim": 64,
                       "dropout": 0.0},
        "batch_size": 512,
        "max_len": 128,
        "lr": 0.002,
        "warmup": 5,
        "max_steps": 6,
        "valid_interval": 3,
        "log_interval": 2,
        "max_output_len": 10,
        "model_dir": str(model_dir),
        "cache_dir": str(model_dir.parent / "cache"),
    }
    config.update(overrides)
    return config


@pytest.fixture
def write_config(tiny_data_dir, tiny_tokenizer_dir, tmp_path):
    """write_config(**overrides) -> path of a YAML config for the tiny setup (model_dir under tmp_path)."""

    def write(name: str = "config.yaml", **overrides) -> Path:
        path = tmp_path / name
        content = tiny_config_dict(tiny_data_dir, tiny_tokenizer_dir, tmp_path / "model", **overrides)
        path.write_text(yaml.safe_dump(content), encoding="utf-8")
        return path

    return write
