"""Tiny pretrained-model stand-ins of each family (NLLB-200, M2M100, Marian/opus-mt, mBART-50, T5), built offline.

Each is a random model from a config with a real tokenizer of the family's class, trained here on the bundled Bible
text: a `tokenizers` BPE model for NLLB (`NllbTokenizer(tokenizer_object=...)`), one SentencePiece BPE model for the
others (its pieces and scores as a Unigram vocabulary for mBART-50 and T5; the `.model` file itself with a
`vocab.json` for M2M100 and Marian). Every directory loads with AutoTokenizer and AutoModelForSeq2SeqLM.
"""

import io
import json
from pathlib import Path

import pytest

FAMILIES = ("nllb", "m2m100", "marian", "mbart50", "t5")
TRAIN_LINES = 200
VALID_LINES = 8
TOKENIZER_LINES = 600
TINY = {"d_model": 32, "encoder_layers": 1, "decoder_layers": 1, "encoder_attention_heads": 2,
        "decoder_attention_heads": 2, "encoder_ffn_dim": 64, "decoder_ffn_dim": 64, "max_position_embeddings": 256,
        "dropout": 0.0, "attention_dropout": 0.0, "activation_dropout": 0.0, "encoder_layerdrop": 0.0,
        "decoder_layerdrop": 0.0}


def _lines(bible_dir: Path, split: str, lang: str, count: int) -> list[str]:
    with open(bible_dir / f"{split}.{lang}", encoding="utf-8") as f:
        return f.read().splitlines()[:count]


@pytest.fixture(scope="session")
def finetune_data_dir(bible_dir, tmp_path_factory) -> Path:
    """train.{en,es} (200 lines) and valid.{en,es} (8 lines) of the Bible corpus."""
    directory = tmp_path_factory.mktemp("finetune-data")
    for lang in ("en", "es"):
        (directory / f"train.{lang}").write_text("\n".join(_lines(bible_dir, "train", lang, TRAIN_LINES)) + "\n")
        (directory / f"valid.{lang}").write_text("\n".join(_lines(bible_dir, "valid", lang, VALID_LINES)) + "\n")
    return directory


@pytest.fixture(scope="session")
def spm_model(bible_dir) -> bytes:
    """A 500-piece SentencePiece BPE model of Bible en+es text (serialized)."""
    import sentencepiece as spm

    text = _lines(bible_dir, "train", "en", TOKENIZER_LINES) + _lines(bible_dir, "train", "es", TOKENIZER_LINES)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(text), model_writer=model, vocab_size=500, model_type="bpe", character_coverage=1.0,
        unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1, minloglevel=2, num_threads=1)
    return model.getvalue()


def _pieces(spm_bytes: bytes) -> list[tuple[str, float]]:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_proto=spm_bytes)
    return [(sp.id_to_piece(i), sp.get_score(i)) for i in range(1, sp.get_piece_size())]  # without <unk>


def build_tokenizer(family: str, directory: Path, bible_dir: Path, spm_bytes: bytes):
    """The family's tokenizer class on offline-trained vocabularies, saved in `directory`."""
    from transformers import M2M100Tokenizer, MarianTokenizer, MBart50Tokenizer, NllbTokenizer, T5Tokenizer

    directory.mkdir(parents=True, exist_ok=True)
    if family == "nllb":
        from tokenizers import SentencePieceBPETokenizer

        bpe = SentencePieceBPETokenizer()
        text = _lines(bible_dir, "train", "en", TOKENIZER_LINES) + _lines(bible_dir, "train", "es", TOKENIZER_LINES)
        bpe.train_from_iterator(text, vocab_size=600, special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
                                show_progress=False)
        tokenizer = NllbTokenizer(tokenizer_object=bpe, src_lang="eng_Latn", tgt_lang="spa_Latn")
    elif family == "mbart50":
        vocab = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + _pieces(spm_bytes)
        tokenizer = MBart50Tokenizer(vocab=vocab, src_lang="en_XX", tgt_lang="es_XX")
    elif family == "t5":
        tokenizer = T5Tokenizer(vocab=[("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + _pieces(spm_bytes),
                                extra_ids=0)
    elif family in ("m2m100", "marian"):
        if family == "m2m100":
            tokens = ["<s>", "<pad>", "</s>", "<unk>"] + [p for p, _ in _pieces(spm_bytes)]
        else:  # a multilingual opus-mt model: target language tokens in the vocabulary, <pad> last
            tokens = ["</s>", "<unk>", ">>spa<<", ">>fra<<"] + [p for p, _ in _pieces(spm_bytes)] + ["<pad>"]
        vocab_file = directory / "vocab.json"
        vocab_file.write_text(json.dumps({token: i for i, token in enumerate(tokens)}, ensure_ascii=False))
        spm_files = ["sentencepiece.bpe.model"] if family == "m2m100" else ["source.spm", "target.spm"]
        for name in spm_files:
            (directory / name).write_bytes(spm_bytes)
        if family == "m2m100":
            tokenizer = M2M100Tokenizer(str(vocab_file), str(directory / spm_files[0]), src_lang="en", tgt_lang="es")
        else:
            tokenizer = MarianTokenizer(str(directory / "source.spm"), str(directory / "target.spm"), str(vocab_file))
    else:
        raise ValueError(family)
    tokenizer.save_pretrained(directory)
    return tokenizer


def build_model(family: str, tokenizer):
    """A tiny random model of the family's architecture whose vocabulary fits `tokenizer`."""
    import torch
    from transformers import (
        M2M100Config,
        M2M100ForConditionalGeneration,
        MarianConfig,
        MarianMTModel,
        MBartConfig,
        MBartForConditionalGeneration,
        T5Config,
        T5ForConditionalGeneration,
    )

    from pasero_hf.models.vocab_trimming import tokenizer_id_bound

    torch.manual_seed(0)
    vocab_size = tokenizer_id_bound(tokenizer)
    ids = {"pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id}
    if family in ("nllb", "m2m100"):
        return M2M100ForConditionalGeneration(M2M100Config(
            vocab_size=vocab_size, bos_token_id=0, decoder_start_token_id=tokenizer.eos_token_id, **ids, **TINY))
    if family == "mbart50":
        return MBartForConditionalGeneration(MBartConfig(
            vocab_size=vocab_size, bos_token_id=0, decoder_start_token_id=tokenizer.eos_token_id, **ids, **TINY))
    if family == "marian":
        return MarianMTModel(MarianConfig(
            vocab_size=vocab_size, decoder_vocab_size=vocab_size, decoder_start_token_id=tokenizer.pad_token_id,
            share_encoder_decoder_embeddings=True, **ids, **TINY))
    if family == "t5":
        return T5ForConditionalGeneration(T5Config(
            vocab_size=vocab_size, d_model=32, d_kv=16, d_ff=64, num_layers=1, num_decoder_layers=1, num_heads=2,
            dropout_rate=0.0, decoder_start_token_id=tokenizer.pad_token_id, **ids))
    raise ValueError(family)


@pytest.fixture(scope="session")
def family_model_dirs(bible_dir, spm_model, tmp_path_factory) -> dict[str, Path]:
    """{family: directory with a tiny random model and its tokenizer}."""
    root = tmp_path_factory.mktemp("pretrained")
    directories = {}
    for family in FAMILIES:
        directory = root / family
        tokenizer = build_tokenizer(family, directory, bible_dir, spm_model)
        build_model(family, tokenizer).save_pretrained(directory)
        directories[family] = directory
    return directories


def finetune_config(data_dir: Path, model: Path | str, model_dir: Path, **overrides) -> dict:
    """A flat training configuration fine-tuning `model` on the tiny en->es corpus for a few steps."""
    config = {
        "data_dir": str(data_dir),
        "source_lang": "en",
        "target_lang": "es",
        "train_corpora": [{"paths": ["train"]}],
        "valid_corpora": [{"paths": ["valid"]}],
        "model": str(model),
        "batch_size": 600,
        "max_len": 100,
        "lr": 0.003,
        "warmup": 2,
        "max_steps": 4,
        "valid_interval": 2,
        "log_interval": 2,
        "max_output_len": 8,
        "model_dir": str(model_dir),
        "cache_dir": str(model_dir.parent / "cache"),
    }
    config.update(overrides)
    return config
