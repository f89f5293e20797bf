"""Dictionaries and bpecodes files: fairseq semantics, JSON vocabularies, clear errors on bad files."""

import json

import pytest

from pasero_hf.tokenization import PaseroBPE, build_dictionary, check_vocabulary_coverage, read_bpecodes
from pasero_hf.tokenization.dictionary import Dictionary, load_vocabulary, strip_leading_tags


def test_fairseq_dictionary_ids(models_dir):
    dictionary = Dictionary.from_file(models_dir / "bible-en-es-8k" / "dict.txt")
    first_line = (models_dir / "bible-en-es-8k" / "dict.txt").read_text(encoding="utf-8").split("\n")[0]
    assert dictionary.tokens[:4] == ["<s>", "<pad>", "</s>", "<unk>"]
    assert dictionary.index(first_line.split()[0]) == 4
    assert dictionary.index("never-seen-token") == 3
    assert len(dictionary) == 4 + len(load_vocabulary(models_dir / "bible-en-es-8k" / "dict.txt"))


def test_dictionary_that_places_special_tokens_itself(tmp_path):
    (tmp_path / "dict.txt").write_text("<pad> 0\n<s> 0\n</s> 0\n<unk> 0\nhello 5\n", encoding="utf-8")
    dictionary = Dictionary.from_file(tmp_path / "dict.txt")
    assert [dictionary.index(t) for t in ("<pad>", "<s>", "</s>", "<unk>", "hello")] == [0, 1, 2, 3, 4]


def test_partial_special_tokens_are_refused(tmp_path):
    (tmp_path / "dict.txt").write_text("<unk> 0\nhello 5\n", encoding="utf-8")
    with pytest.raises(ValueError, match="dict.txt.*</s>"):
        Dictionary.from_file(tmp_path / "dict.txt")


def test_json_vocabulary_by_extension(tmp_path):
    (tmp_path / "dict.json").write_text(json.dumps({"<pad>": 0, "</s>": 1, "a": 2, "b": 4}), encoding="utf-8")
    dictionary = Dictionary.from_file(tmp_path / "dict.json")
    assert dictionary.index("b") == 4 and len(dictionary) == 5
    (tmp_path / "bad.json").write_text('{"a": 0,\n "b": }', encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.json, line 2"):
        Dictionary.from_file(tmp_path / "bad.json")


def test_malformed_dict_line_names_file_and_line(tmp_path):
    (tmp_path / "dict.txt").write_text("a 1\n\nb 2\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"dict.txt, line 2"):
        Dictionary.from_file(tmp_path / "dict.txt")


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.txt"):
        Dictionary.from_file(tmp_path / "nothing.txt")
    with pytest.raises(FileNotFoundError, match="bpecodes"):
        PaseroBPE.from_file(tmp_path / "bpecodes")


@pytest.mark.parametrize(
    "content, line",
    [
        ('# {"inline_case": true,\n', 1),  # malformed JSON header
        ('# {"protect_regex": "(unclosed"}\na b\n', 1),
        ("# {}\na b\nabc\n", 3),  # a merge needs two symbols
        ("a b\nc d e\n", 2),
    ],
)
def test_malformed_bpecodes_names_file_and_line(tmp_path, content, line):
    (tmp_path / "bpecodes").write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=rf"bpecodes, line {line}\b"):
        read_bpecodes(tmp_path / "bpecodes")


def test_bpecodes_without_header_and_save_round_trip(tmp_path):
    (tmp_path / "bpecodes").write_text("▁ t\nh e\n▁t he\n", encoding="utf-8")
    bpe = PaseroBPE.from_file(tmp_path / "bpecodes")
    assert bpe.tokenize("The theme") == ["▁the", "<T>", "▁the", "m", "e"]
    bpe.save(tmp_path / "saved")
    options, merges = read_bpecodes(tmp_path / "saved")
    assert merges == bpe.merges and options == bpe.options


def test_build_dictionary_spells_out_characters_and_pads():
    entries = build_dictionary({"▁ab": 12, "c": 3, "▁": 20}, min_freq=10, custom_symbols=["<lang:fr>"])
    tokens = [token for token, _ in entries]
    assert tokens[:5] == ["<T>", "<U>", "<BT>", "<PHL>", "<mask>"]
    counts = dict(entries)
    # characters are counted over every subword they appear in; "c" (3) is below min_freq
    assert counts["▁"] == 32 and counts["a"] == 12 and "c" not in counts
    assert "<lang:fr>" in counts and (len(entries) + 4) % 8 == 0
    assert tokens[-1].startswith("madeupword")


def test_vocabulary_coverage_report():
    report = check_vocabulary_coverage({"▁a": 5, "b": 2, "zz": 7}, ["▁a", "b"])
    assert not report.ok and report.missing == {"zz": 7}
    assert report.missing_tokens == 7 and report.total_tokens == 14
    assert "'zz' (7)" in str(report) and "50.00%" in str(report)
    assert check_vocabulary_coverage({"▁a": 1}, ["▁a"]).ok


def test_strip_leading_tags():
    assert strip_leading_tags(["<lang:fr>", "<domain:news>", "▁a", "<lang:de>"]) == ["▁a", "<lang:de>"]
