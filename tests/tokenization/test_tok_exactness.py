"""Our BPE application must reproduce the original Pasero tokenizer token for token.

References were produced by the original code (see tests/fixtures/pasero-models/LICENSE.md and
tests/fixtures/tokenization-edge/README.md), never by ours.
"""

from pathlib import Path

import pytest

from pasero_hf.tokenization import detokenize

MODELS_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "pasero-models"
MODELS = sorted(path.parent.name for path in MODELS_DIR.glob("*/bpecodes"))


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("split", ["valid", "test"])
@pytest.mark.parametrize("lang", ["en", "es"])
def test_bible_references(model, split, lang, bible_dir, models_dir, load_bpe, read_lines):
    source = read_lines(bible_dir / f"{split}.{lang}")
    reference = read_lines(models_dir / "reference" / f"{model}.{split}.{lang}.tok")
    assert len(source) == len(reference)
    bpe = load_bpe(model)
    mismatches = [
        (number, expected)
        for number, (line, expected) in enumerate(zip(source, reference), 1)
        if " ".join(bpe.tokenize(line)) != expected
    ]
    assert not mismatches, f"{len(mismatches)} lines differ, first: line {mismatches[0][0]}"


@pytest.mark.parametrize("model", MODELS)
def test_edge_cases(model, edge_dir, load_bpe, read_lines):
    """Mixed case, İ/ß/ẞ, full-width, emoji, protected tags, reserved symbols, odd whitespace, NFKC."""
    source = read_lines(edge_dir / "edge.txt")
    reference = read_lines(edge_dir / f"edge.{model}.tok")
    bpe = load_bpe(model)
    for line, expected in zip(source, reference, strict=True):
        assert " ".join(bpe.tokenize(line)) == expected, repr(line)


@pytest.mark.parametrize("model", MODELS)
def test_detokenize_matches_original(model, edge_dir, read_lines):
    tokenized = read_lines(edge_dir / f"edge.{model}.tok")
    reference = read_lines(edge_dir / f"edge.{model}.detok")
    for tokens, expected in zip(tokenized, reference, strict=True):
        assert detokenize(tokens.split()) == expected, repr(tokens)


def test_dictionary_as_vocabulary_splits_like_pasero_decode(bible_dir, edge_dir, load_bpe, read_lines):
    """With dict.txt as vocabulary, merged pieces outside it are split back recursively (19 of 344 lines change)."""
    bpe = load_bpe("bible-en-es-8k", with_vocabulary=True)
    plain = load_bpe("bible-en-es-8k")
    source = read_lines(bible_dir / "test.en")
    reference = read_lines(edge_dir / "bible-en-es-8k.vocab.test.en.tok")
    outputs = [" ".join(bpe.tokenize(line)) for line in source]
    assert outputs == reference
    assert sum(out != " ".join(plain.tokenize(line)) for out, line in zip(outputs, source)) == 19
    edge_reference = read_lines(edge_dir / "edge.bible-en-es-8k.vocab.tok")
    for line, expected in zip(read_lines(edge_dir / "edge.txt"), edge_reference, strict=True):
        assert " ".join(bpe.tokenize(line)) == expected


def test_unk_replacement(load_bpe):
    bpe = load_bpe("bible-en-es-8k", with_vocabulary=True)
    tokens = bpe.tokenize("Hello 😀 world", unk="<unk:{token}>")
    assert "<unk:😀>" in tokens
    assert "▁world" in tokens


def test_case_tokens_follow_their_subword(load_bpe):
    bpe = load_bpe("TED-de-en")
    tokens = bpe.tokenize("HELLO Hello hello")
    assert tokens.count("<U>") >= 1 and tokens.count("<T>") == 1
    assert detokenize(tokens) == "HELLO Hello hello"
