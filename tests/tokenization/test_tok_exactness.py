"""Our BPE application must reproduce the original Pasero tokenizer token for token.

References were produced by the original code (see tests/fixtures/pasero-models/LICENSE.md and
tests/fixtures/tokenization-edge/README.md), never by ours.
"""

from pathlib import Path

import pytest

from pasero_hf.tokenization import PaseroBPE, detokenize, load_vocabulary

MODELS_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "pasero-models"
MODELS = sorted(path.parent.name for path in MODELS_DIR.glob("*/bpecodes"))


def tokenized_lines(bpe: PaseroBPE, lines: list[str], api: str) -> list[str]:
    """What `pasero-tokenize` writes (block API, cold caches) or the joined tokens of `tokenize`, line by line."""
    if api == "tokenize_to_strings":
        return bpe.tokenize_to_strings(lines)
    return [" ".join(bpe.tokenize(line)) for line in lines]


@pytest.mark.parametrize("api", ["tokenize", "tokenize_to_strings"])
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("split", ["valid", "test"])
@pytest.mark.parametrize("lang", ["en", "es"])
def test_bible_references(model, split, lang, api, bible_dir, models_dir, load_bpe, read_lines):
    source = read_lines(bible_dir / f"{split}.{lang}")
    reference = read_lines(models_dir / "reference" / f"{model}.{split}.{lang}.tok")
    assert len(source) == len(reference)
    bpe = load_bpe(model) if api == "tokenize" else PaseroBPE.from_file(models_dir / model / "bpecodes")
    mismatches = [
        (number, expected)
        for number, (output, expected) in enumerate(zip(tokenized_lines(bpe, source, api), reference), 1)
        if output != expected
    ]
    assert not mismatches, f"{len(mismatches)} lines differ, first: line {mismatches[0][0]}"


@pytest.mark.parametrize("api", ["tokenize", "tokenize_to_strings"])
@pytest.mark.parametrize("model", MODELS)
def test_edge_cases(model, api, edge_dir, models_dir, load_bpe, read_lines):
    """Mixed case, İ/ß/ẞ, full-width, emoji, protected tags, reserved symbols, odd whitespace, NFKC (the block API
    takes its per-line path for lines with reserved characters, and for whole models with NFKC or protection)."""
    source = read_lines(edge_dir / "edge.txt")
    reference = read_lines(edge_dir / f"edge.{model}.tok")
    bpe = load_bpe(model) if api == "tokenize" else PaseroBPE.from_file(models_dir / model / "bpecodes")
    for line, output, expected in zip(source, tokenized_lines(bpe, source, api), reference, strict=True):
        assert output == expected, repr(line)


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


def test_block_api_with_vocabulary_and_unk_matches_tokenize(bible_dir, edge_dir, models_dir, read_lines):
    """`tokenize_to_strings` (what pasero-tokenize --vocabulary [--unk] writes), cold, equals `tokenize` line by
    line: split-back into the dictionary and unknown-token replacement, on Bible lines and the edge cases."""
    model = models_dir / "bible-en-es-8k"
    vocabulary = load_vocabulary(model / "dict.txt")
    # 'Uthai' starts with a lone '▁' subword ('▁u' has no merge), dropped at the start of a line only
    crafted = ["Héllo 😀 wörld ▁ 😀", "😀", "Uthai", "Uthai the son", "the son Uthai", "<T>Uthai", "▁ Uthai", "\x1cUthai"]
    lines = read_lines(bible_dir / "test.en") + read_lines(edge_dir / "edge.txt") + crafted
    reference = PaseroBPE.from_file(model / "bpecodes", vocabulary=vocabulary)
    for unk in (None, "<unk>", "<unk:{token}>"):
        bpe = PaseroBPE.from_file(model / "bpecodes", vocabulary=vocabulary)
        expected = [" ".join(reference.tokenize(line, unk=unk)) for line in lines]
        assert bpe.tokenize_to_strings(lines, unk=unk) == expected
        assert bpe.tokenize_to_strings(lines, unk=unk) == expected  # warm
    assert "<unk:😀>" in bpe.tokenize_to_strings(["😀"], unk="<unk:{token}>")[0]


@pytest.mark.parametrize("model", MODELS)
def test_rust_engine_segments_like_the_python_merges(model, bible_dir, edge_dir, models_dir, read_lines):
    """Big cold runs merge new words with `tokenizers`' BPE model: every real model's table qualifies, and the
    tokens are the Python merges' (the original's), for Bible text and the edge cases (characters outside the merges,
    which the Rust model would drop, fall back to Python); a table where the two orders could differ gets no engine."""
    from pasero_hf.tokenization.bpe import _RUST_ENGINE_AFTER, _rust_engine

    lines = read_lines(bible_dir / "test.es") + read_lines(bible_dir / "valid.en") + read_lines(edge_dir / "edge.txt")
    python = PaseroBPE.from_file(models_dir / model / "bpecodes")
    python._engine = False
    rust = PaseroBPE.from_file(models_dir / model / "bpecodes")
    rust._engine = _rust_engine(rust._ranks)
    assert rust._engine is not None
    assert rust.tokenize_to_strings(lines) == python.tokenize_to_strings(lines)
    # it is built by itself once enough new words were merged in Python (these lines have enough)
    auto = PaseroBPE.from_file(models_dir / model / "bpecodes")
    assert auto.tokenize_to_strings(lines) == python.tokenize_to_strings(lines)
    assert auto._engine and auto._merged_in_python == _RUST_ENGINE_AFTER
    assert _rust_engine({("ab", "c"): 0, ("a", "b"): 1}) is None


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
