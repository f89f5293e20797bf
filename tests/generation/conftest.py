"""Models for the decoding tests, built once per session in temporary directories.

- `nllb_dir`: a tiny random M2M100 (NLLB layout) with a real BPE tokenizer trained on the bundled Bible corpus and
  NLLB language codes (`eng_Latn`, `spa_Latn`, `fra_Latn`).
- `pasero_tiny_dir`: the original-Pasero tiny en-es model (tests/fixtures/pasero-tiny-en-es) converted with
  `convert_pasero_checkpoint`.
"""

import itertools
import json
from pathlib import Path

import pytest
import torch

LANG_CODES = ["eng_Latn", "spa_Latn", "fra_Latn"]


def train_bpe(bible_dir: Path, vocab_size: int = 600):
    """Vocabulary and merges of a small BPE trained on 2,000 lines of each side of the Bible corpus."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    lines = []
    for lang in ("en", "es"):
        with open(bible_dir / f"train.{lang}", encoding="utf-8") as file:
            lines += [line.strip() for line in itertools.islice(file, 2000)]
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<s>", "<pad>", "</s>", "<unk>"], show_progress=False
    )
    tokenizer.train_from_iterator(lines, trainer)
    merges = [tuple(merge) for merge in json.loads(tokenizer.to_str())["model"]["merges"]]
    return tokenizer.get_vocab(), merges


@pytest.fixture(scope="session")
def bible_bpe(bible_dir):
    """(vocabulary, merges) of the test BPE."""
    return train_bpe(bible_dir)


@pytest.fixture(scope="session")
def nllb_dir(tmp_path_factory, bible_bpe) -> Path:
    from transformers import M2M100Config, M2M100ForConditionalGeneration, NllbTokenizer

    vocab, merges = bible_bpe
    tokenizer = NllbTokenizer(
        vocab=vocab, merges=merges, extra_special_tokens=LANG_CODES, src_lang="eng_Latn", tgt_lang="spa_Latn"
    )
    config = M2M100Config(
        vocab_size=len(tokenizer), d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=128,
        decoder_start_token_id=2, pad_token_id=1, eos_token_id=2, bos_token_id=0, scale_embedding=True,
        # a wide initialization gives peaked, input-dependent output distributions: searches then disagree
        init_std=0.5, dropout=0.0, layerdrop=0.0,
    )
    torch.manual_seed(1)
    model = M2M100ForConditionalGeneration(config).eval()
    model.generation_config.max_length = 200
    path = tmp_path_factory.mktemp("nllb-tiny")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def nllb_generator(nllb_dir):
    from pasero_hf.generation.text_generator import TextGenerator

    return TextGenerator.from_pretrained(nllb_dir, beam_size=1, max_output_len=12)


@pytest.fixture(scope="session")
def pasero_tiny_dir(tmp_path_factory, fixtures_dir) -> Path:
    from pasero_hf.models.pasero.convert_pasero_checkpoint import convert_pasero_checkpoint

    output = tmp_path_factory.mktemp("pasero-tiny") / "model"
    return convert_pasero_checkpoint(fixtures_dir / "pasero-tiny-en-es", output)


@pytest.fixture(scope="session")
def pasero_generator(pasero_tiny_dir):
    from pasero_hf.generation.text_generator import TextGenerator

    return TextGenerator.from_pretrained(pasero_tiny_dir)


@pytest.fixture(scope="session")
def tiny_ct2(pasero_tiny_dir, tmp_path_factory) -> Path:
    """`pasero_tiny_dir` exported to CTranslate2 (float32)."""
    from pasero_hf.export import export_ctranslate2

    return export_ctranslate2(pasero_tiny_dir, tmp_path_factory.mktemp("ct2") / "tiny-ct2")


@pytest.fixture(scope="session")
def bible_test(bible_dir) -> list[str]:
    """The 344 English lines of the bundled Bible test set."""
    return (bible_dir / "test.en").read_text(encoding="utf-8").splitlines()
