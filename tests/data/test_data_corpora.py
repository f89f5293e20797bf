"""Corpus expansion and reading errors, on real files; every error is raised by the dataset builders."""

import json

import datasets
import pytest

from pasero_hf.data import CorpusSpec, DataConfig, build_train_dataset, build_valid_datasets, expand_corpora
from pasero_hf.data.reading import read_pairs


def test_pair_placeholder_expands_per_language_pair(iso_dir):
    corpora = expand_corpora([CorpusSpec(paths=["{pair}/train"])], str(iso_dir), ["en"], ["de", "ja"], None)
    assert [(c.source_path, c.target_path) for c in corpora] == [
        (f"{iso_dir}/en-de/train.en", f"{iso_dir}/en-de/train.de"),
        (f"{iso_dir}/en-ja/train.en", f"{iso_dir}/en-ja/train.ja"),
    ]
    assert [c.corpus_id for c in corpora] == ["en-de/train.en-de", "en-ja/train.en-ja"]
    assert {c.domain for c in corpora} == {"train"}


def test_reverse_direction_finds_the_src_tgt_swapped_directory(iso_dir):
    # de-en has no de-en/ directory: {pair} falls back to en-de, like Pasero.
    [corpus] = expand_corpora([CorpusSpec(paths=["{pair}/train"])], str(iso_dir), None, None, ["de-en"])
    assert (corpus.source_path, corpus.target_path) == (f"{iso_dir}/en-de/train.de", f"{iso_dir}/en-de/train.en")
    assert (corpus.source_lang, corpus.target_lang) == ("de", "en")


def test_missing_file_names_the_expanded_path_and_placeholder_values(iso_dir):
    with pytest.raises(FileNotFoundError) as error:
        expand_corpora([CorpusSpec(paths=["{pair}/train"])], str(iso_dir), ["en"], ["de", "xx"], None)
    message = str(error.value)
    assert f"{iso_dir}/en-xx/train.xx" in message
    assert "src='en', tgt='xx', pair='en-xx'" in message and "train_corpora[0]" in message


def test_unknown_language_pair_and_no_pair_are_errors(iso_dir):
    spec = CorpusSpec(paths=["{pair}/train"], lang_pairs=["en-de"])
    with pytest.raises(ValueError, match=r"no corpus provides the language pair\(s\) en-fr \(provided: en-de\)"):
        expand_corpora([spec], str(iso_dir), None, None, ["en-de", "en-fr"])
    with pytest.raises(ValueError, match="no language pair is defined"):
        expand_corpora([CorpusSpec(paths=["{pair}/train"])], str(iso_dir), None, None, None)
    with pytest.raises(ValueError, match=r"unknown placeholder 'lang'"):
        expand_corpora([CorpusSpec(paths=["{lang}/train"])], str(iso_dir), ["en"], ["de"], None)


def _config(data_dir, **options) -> DataConfig:
    return DataConfig.from_dict({"data_dir": str(data_dir), "lang_pairs": ["en-es"], "batch_size": 64,
                                 "max_len": 32, "buffer_size": 50, "cache_dir": str(data_dir / "cache"),
                                 "train_corpora": [{"paths": ["train"]}], **options})


def test_line_count_mismatch_names_both_files_and_counts(tmp_path, lines_writer, bible_tokenizer):
    src = lines_writer(tmp_path / "train.en", ["a b", "c", "d"])
    tgt = lines_writer(tmp_path / "train.es", ["x", "y"])
    with pytest.raises(ValueError) as error:
        build_train_dataset(_config(tmp_path), bible_tokenizer, decoder_start_token_id=2)
    assert f"{src} has 3 lines, {tgt} has 2 lines" in str(error.value)


def test_last_line_without_newline_counts(tmp_path, lines_writer, bible_tokenizer):
    lines_writer(tmp_path / "train.en", ["a b", "c"])
    tgt = tmp_path / "train.es"
    tgt.write_text("x\ny", encoding="utf-8")
    stream = build_train_dataset(_config(tmp_path), bible_tokenizer, decoder_start_token_id=2)
    assert stream.sizes.tolist() == [2]


def test_empty_corpus_and_empty_sides(tmp_path, lines_writer, bible_tokenizer):
    lines_writer(tmp_path / "train.en", ["a b", "", "c", "d"])
    lines_writer(tmp_path / "train.es", ["x", "y", "  ", "z"])
    stream = build_train_dataset(_config(tmp_path), bible_tokenizer, decoder_start_token_id=2)
    assert stream.sizes.tolist() == [2]  # the pairs with an empty side are skipped
    rows = stream.datasets[0].to_dict()
    assert [bible_tokenizer.decode(ids, skip_special_tokens=True) for ids in rows["input_ids"]] == ["a b", "d"]

    lines_writer(tmp_path / "empty" / "train.en", ["", ""])
    lines_writer(tmp_path / "empty" / "train.es", ["x", ""])
    with pytest.raises(ValueError, match=r"corpus train.en-es .*empty/train.en.* is empty"):
        build_train_dataset(_config(tmp_path / "empty"), bible_tokenizer, decoder_start_token_id=2)


def test_invalid_utf8_names_file_and_line(tmp_path, lines_writer, bible_tokenizer):
    lines_writer(tmp_path / "train.en", ["a", "b", "c"])
    tgt = tmp_path / "train.es"
    tgt.write_bytes(b"x\ny\n\xff\xfe z\n")
    with pytest.raises(ValueError, match=rf"{tgt}:3: invalid UTF-8"):
        build_train_dataset(_config(tmp_path), bible_tokenizer, decoder_start_token_id=2)


def test_tsv_jsonl_and_dataset_formats_read_the_same_pairs(tmp_path, lines_writer, iso_dir):
    from pasero_hf.data.corpora import expand_corpus

    [parallel] = expand_corpora([CorpusSpec(paths=["{pair}/train"])], str(iso_dir), None, None, ["en-ko"])
    expected = list(read_pairs(parallel))
    assert len(expected) == 1036
    lines_writer(tmp_path / "en-ko.tsv", [f"{s}\t{t}" for s, t in expected])
    lines_writer(tmp_path / "en-ko.jsonl", [json.dumps({"translation": {"en": s, "ko": t}}) for s, t in expected])
    datasets.Dataset.from_dict({"en": [s for s, _ in expected], "ko": [t for _, t in expected]}).save_to_disk(
        str(tmp_path / "en-ko.ds"))
    for path, fmt in (("{pair}.tsv", "tsv"), ("{pair}.jsonl", "jsonl"), ("{pair}.ds", "dataset")):
        [corpus] = expand_corpus(CorpusSpec(paths=[path], format=fmt), str(tmp_path), [("en", "ko")])
        assert list(read_pairs(corpus)) == expected, fmt


@pytest.mark.parametrize("fmt, content, message", [
    ("tsv", "a\tb\nno tab here\n", r"bad.tsv:2: expected 2 tab-separated columns"),
    ("jsonl", '{"en": "a", "es": "b"}\n{"en": "a"\n', r"bad.jsonl:2: invalid JSON"),
    ("jsonl", '{"en": "a", "fr": "b"}\n', r"bad.jsonl:1: no 'es' field"),
])
def test_malformed_tsv_and_jsonl_name_file_and_line(tmp_path, fmt, content, message):
    from pasero_hf.data.corpora import expand_corpus

    (tmp_path / f"bad.{fmt}").write_text(content, encoding="utf-8")
    [corpus] = expand_corpus(CorpusSpec(paths=[f"bad.{fmt}"], format=fmt), str(tmp_path), [("en", "es")])
    with pytest.raises(ValueError, match=message):
        list(read_pairs(corpus))


def test_valid_sets_truncate_and_keep_text(tmp_path, lines_writer, bible_tokenizer):
    long = " ".join(f"w{i}" for i in range(40))
    lines_writer(tmp_path / "valid.en", ["short one", long, "", "three words here"])
    lines_writer(tmp_path / "valid.es", ["corto", long, "nada", "tres"])
    config = _config(tmp_path, valid_corpora=[{"paths": ["valid"]}], max_source_len=8, max_target_len=6)
    [(name, valid)] = build_valid_datasets(config, bible_tokenizer, decoder_start_token_id=2).items()
    assert name == "valid.en-es"
    assert valid.sources == ["short one", long, "three words here"]
    assert valid.references == ["corto", long, "tres"]
    rows = {}
    for batch, indices in zip(valid.batches, valid.batch_indices):
        for row, index in enumerate(indices):
            ids = batch["input_ids"][row][batch["attention_mask"][row].bool()].tolist()
            labels = batch["labels"][row][batch["labels"][row] != -100].tolist()
            rows[index] = (ids, labels)
    assert sorted(rows) == [0, 1, 2]
    long_ids, long_labels = rows[1]
    assert len(long_ids) == 8 and long_ids[-1] == bible_tokenizer.eos_token_id
    assert long_ids[:-1] == bible_tokenizer(long)["input_ids"][:7]
    assert len(long_labels) == 6 and long_labels[-1] == bible_tokenizer.eos_token_id
    assert rows[0][0] == bible_tokenizer("short one")["input_ids"]


def test_one_valid_set_per_pair_covering_every_line_once(iso_config, iso_tokenizer, iso_dir):
    config = iso_config(valid_corpora=[{"paths": ["{pair}/train"]}], valid_lang_pairs=["en-de", "ko-en"],
                        max_lines=300)
    valid_sets = build_valid_datasets(config, iso_tokenizer, decoder_start_token_id=2)
    assert list(valid_sets) == ["en-de/train.en-de", "en-ko/train.ko-en"]
    korean = (iso_dir / "en-ko" / "train.ko").read_text(encoding="utf-8").splitlines()
    assert valid_sets["en-ko/train.ko-en"].sources == [line.strip() for line in korean[:300]]
    for valid in valid_sets.values():
        indices = sorted(i for batch in valid.batch_indices for i in batch)
        assert indices == list(range(300))
        assert {batch["target_lang"] for batch in valid.batches} == {valid.corpus.target_lang}
        halves = [valid.shard(rank, 2) for rank in (0, 1)]
        assert sum(len(h.batches) for h in halves) == len(valid.batches)
        assert sorted(i for h in halves for batch in h.batch_indices for i in batch) == list(range(300))


def test_one_placeholder_expansion_for_corpora_decoding_and_training():
    from pasero_hf.data.corpora import fill_lang_placeholders

    assert fill_lang_placeholders("{pair}/train.{src}", "en", "de") == "en-de/train.en"
    assert fill_lang_placeholders("{pair}/train.{tgt}", "en", "de", pair="de-en") == "de-en/train.de"
    with pytest.raises(ValueError, match=r"'out\.\{tgt\}' contains \{tgt\} but the language is unknown: give -t"):
        fill_lang_placeholders("out.{tgt}", "en", None, hint=": give -t")
    with pytest.raises(ValueError, match=r"model_dir: 'runs/\{lang\}': unknown placeholder 'lang'"):
        fill_lang_placeholders("runs/{lang}", "en", "de", where="model_dir: ")
