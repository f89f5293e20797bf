"""pasero-build-tokenizer: same merges and dictionary as the original trainer, temperature, language codes."""

import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from pasero_hf.tokenization import PaseroBPE, read_bpecodes, train_bpe
from pasero_hf.tokenization.dictionary import Dictionary, read_dict_file


def build_tokenizer(*args: str) -> subprocess.CompletedProcess:
    script = Path(sys.executable).parent / "pasero-build-tokenizer"
    return subprocess.run([str(script), *args], capture_output=True, text=True, check=True)


@pytest.fixture(scope="module")
def bible_8k(tmp_path_factory, bible_dir) -> Path:
    out = tmp_path_factory.mktemp("bible8k")
    build_tokenizer(
        "-i",
        str(bible_dir / "train.en"),
        str(bible_dir / "train.es"),
        "-o",
        str(out / "bpecodes"),
        "-d",
        str(out / "dict.txt"),
        "-s",
        "8000",
    )
    return out


def test_same_files_as_original_trainer(bible_8k, edge_dir):
    """Byte-identical bpecodes (header and all 8000 merges in order) and dict.txt."""
    reference = edge_dir / "bible-train-8k"
    assert (bible_8k / "bpecodes").read_bytes() == (reference / "bpecodes").read_bytes()
    assert (bible_8k / "dict.txt").read_bytes() == (reference / "dict.txt").read_bytes()


def test_parallel_word_counting_is_the_same(bible_dir, monkeypatch):
    """--threads: chunks of all files counted by several processes give the same counts as one process."""
    from pasero_hf.tokenization import bpe_training
    from pasero_hf.tokenization.bpe import BPEOptions

    monkeypatch.setattr(bpe_training, "_LINES_PER_CHUNK", 3000)  # several chunks per file, both files in flight
    paths = [str(bible_dir / "train.en"), str(bible_dir / "train.es")]
    splitting = bpe_training.WordSplitting(BPEOptions())
    serial = bpe_training.count_words(paths, splitting, threads=1)
    assert bpe_training.count_words(paths, splitting, threads=2) == serial
    assert serial[1] == {"en": 29050, "es": 29050}


def test_tokens_per_line_within_one_percent(bible_8k, bible_dir, read_lines):
    """Quality bar: the original trainer's model gives 30.13 (en) / 29.57 (es) tokens per valid line."""
    bpe = PaseroBPE.from_file(bible_8k / "bpecodes")
    for lang, original in (("en", 30.13), ("es", 29.57)):
        average = statistics.mean(len(bpe.tokenize(line)) for line in read_lines(bible_dir / f"valid.{lang}"))
        assert abs(average - original) / original < 0.01, (lang, average)


def test_dictionary_layout(bible_8k):
    entries = read_dict_file(bible_8k / "dict.txt")
    assert [token for token, _ in entries[:5]] == ["<T>", "<U>", "<BT>", "<PHL>", "<mask>"]
    assert (len(entries) + 4) % 8 == 0
    counts = [count for token, count in entries[5:] if not token.startswith("madeupword")]
    assert counts == sorted(counts, reverse=True) and min(counts) >= 10
    dictionary = Dictionary.from_file(bible_8k / "dict.txt")
    assert [dictionary.index(t) for t in ("<s>", "<pad>", "</s>", "<unk>", "<T>")] == [0, 1, 2, 3, 4]


def _tokens_per_line(bpe: PaseroBPE, lines: list[str]) -> float:
    return statistics.mean(len(bpe.tokenize(line)) for line in lines)


def test_temperature_gives_low_resource_language_more_merges(tmp_path, bible_dir, read_lines):
    english = read_lines(bible_dir / "train.en")[:3000]
    spanish = read_lines(bible_dir / "train.es")[:300]
    (tmp_path / "small.en").write_text("\n".join(english) + "\n", encoding="utf-8")
    (tmp_path / "small.es").write_text("\n".join(spanish) + "\n", encoding="utf-8")
    paths = [str(tmp_path / "small.en"), str(tmp_path / "small.es")]
    natural = train_bpe(paths, 600, temperature=1.0).bpe
    balanced = train_bpe(paths, 600, temperature=5.0).bpe
    valid_es = read_lines(bible_dir / "valid.es")[:200]
    valid_en = read_lines(bible_dir / "valid.en")[:200]
    assert _tokens_per_line(balanced, valid_es) < 0.97 * _tokens_per_line(natural, valid_es)
    assert _tokens_per_line(balanced, valid_en) > _tokens_per_line(natural, valid_en)


def test_lang_codes_and_per_language_dictionaries(tmp_path, bible_dir, read_lines):
    for lang in ("en", "es"):
        lines = read_lines(bible_dir / f"valid.{lang}")
        (tmp_path / f"train.{lang}").write_text("\n".join(lines) + "\n", encoding="utf-8")
    build_tokenizer(
        "-i",
        str(tmp_path / "train.en"),
        str(tmp_path / "train.es"),
        "-o",
        str(tmp_path / "bpecodes"),
        "-d",
        str(tmp_path / "dict.txt"),
        "-s",
        "300",
        "--dict-min-freq",
        "2",
        "--lang-codes",
        "--vocab-path",
        str(tmp_path / "dict.{lang}.txt"),
    )
    joint = dict(read_dict_file(tmp_path / "dict.txt"))
    assert "<lang:en>" in joint and "<lang:es>" in joint
    english = dict(read_dict_file(tmp_path / "dict.en.txt"))
    spanish = dict(read_dict_file(tmp_path / "dict.es.txt"))
    assert "<lang:es>" in english  # every dictionary gets all language codes
    # the joint counts are the sums of the per-language counts
    assert joint["▁"] == english["▁"] + spanish["▁"]
    assert spanish.get("ñ", 0) > english.get("ñ", 0)


def test_no_inline_case_and_nfkc_options(tmp_path, bible_dir):
    build_tokenizer(
        "-i",
        str(bible_dir / "valid.en"),
        "-o",
        str(tmp_path / "bpecodes"),
        "-s",
        "200",
        "--no-inline-case",
        "--nfkc",
    )
    options, merges = read_bpecodes(tmp_path / "bpecodes")
    assert (options.inline_case, options.nfkc, len(merges)) == (False, True, 200)
    tokens = PaseroBPE.from_file(tmp_path / "bpecodes").tokenize("And GOD said ＡＢ")
    assert "<T>" not in tokens and "<U>" not in tokens
    assert "".join(tokens).replace("▁", " ").strip() == "And GOD said AB"


def test_missing_training_file_is_reported(tmp_path):
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "pasero-build-tokenizer"),
            "-i",
            str(tmp_path / "nope.en"),
            "-o",
            str(tmp_path / "bpecodes"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "nope.en" in result.stderr
    assert not (tmp_path / "bpecodes").exists()
