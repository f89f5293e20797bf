"""Tiny NLLB-MoE models and an NLLB tokenizer built from a small SentencePiece model trained on the bundled Bible."""

from pathlib import Path

import pytest
import torch

LANGS = ["eng_Latn", "spa_Latn", "fra_Latn"]


@pytest.fixture(scope="session")
def nllb_tokenizer_dir(bible_dir, tmp_path_factory) -> Path:
    """An `NllbTokenizer` (fairseq ids: <s>=0 <pad>=1 </s>=2 <unk>=3, language codes after the pieces)."""
    import sentencepiece as spm
    from transformers import NllbTokenizer

    spm_dir = tmp_path_factory.mktemp("spm")
    lines = []
    for lang in ("en", "es"):
        lines += (Path(bible_dir) / f"train.{lang}").read_text(encoding="utf-8").splitlines()[:2000]
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_prefix=str(spm_dir / "sentencepiece.bpe"),
        vocab_size=300,
        model_type="bpe",
        bos_id=0,
        pad_id=1,
        eos_id=2,
        unk_id=3,
        minloglevel=2,
    )
    tokenizer = NllbTokenizer.from_pretrained(spm_dir, src_lang="eng_Latn", tgt_lang="spa_Latn", extra_special_tokens=LANGS)
    out = tmp_path_factory.mktemp("nllb-tokenizer")
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def nllb_tokenizer(nllb_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(nllb_tokenizer_dir)


def tiny_config_kwargs(vocab_size: int = 304, **overrides) -> dict:
    """Hyper-parameters of a tiny NLLB-MoE: layers 1 of the encoder and decoder are sparse, 8 experts each."""
    kwargs = dict(
        vocab_size=vocab_size,
        d_model=16,
        encoder_layers=2,
        decoder_layers=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        num_experts=8,
        encoder_sparse_step=2,
        decoder_sparse_step=2,
        max_position_embeddings=128,
        dropout=0.0,
        attention_dropout=0.0,
        encoder_layerdrop=0.0,
        decoder_layerdrop=0.0,
        moe_token_dropout=0.2,
    )
    kwargs.update(overrides)
    return kwargs


def tiny_moe_model(seed: int = 0, **overrides):
    from pasero_hf.models.nllb_moe import PaseroNllbMoeConfig, PaseroNllbMoeForConditionalGeneration

    torch.manual_seed(seed)
    return PaseroNllbMoeForConditionalGeneration(PaseroNllbMoeConfig(**tiny_config_kwargs(**overrides))).eval()


@pytest.fixture(scope="session")
def bible_pairs(bible_dir) -> list[tuple[str, str]]:
    """(English, Spanish) lines of the bundled Bible validation set."""
    en = (Path(bible_dir) / "valid.en").read_text(encoding="utf-8").splitlines()
    es = (Path(bible_dir) / "valid.es").read_text(encoding="utf-8").splitlines()
    return list(zip(en, es))


@pytest.fixture(scope="session")
def make_moe():
    """Factory: `make_moe(seed=0, **config_overrides)` -> tiny random `PaseroNllbMoeForConditionalGeneration`."""
    return tiny_moe_model


@pytest.fixture(scope="session")
def moe_kwargs():
    """Factory: `moe_kwargs(**overrides)` -> tiny NLLB-MoE hyper-parameters (also valid for `NllbMoeConfig`)."""
    return tiny_config_kwargs
