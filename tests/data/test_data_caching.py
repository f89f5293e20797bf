"""Tokenization of the 58k-line Bible corpus happens once: later builds read the `datasets` cache."""

import os
import time

from pasero_hf.data import DataConfig, build_train_dataset, data_loader_throughput


def test_bible_tokenized_once_then_cached(bible_dir, tmp_path, bible_tokenizer):
    config = DataConfig.from_dict({
        "data_dir": str(bible_dir), "lang_pairs": ["en-es"], "train_corpora": [{"paths": ["train"]}],
        "batch_size": 4096, "buffer_size": 10000, "cache_dir": str(tmp_path / "cache"),
    })
    start = time.perf_counter()
    first = build_train_dataset(config, bible_tokenizer, decoder_start_token_id=2)
    first_seconds = time.perf_counter() - start
    with open(bible_dir / "train.en", encoding="utf-8") as en, open(bible_dir / "train.es", encoding="utf-8") as es:
        expected = sum(bool(s.strip()) and bool(t.strip()) for s, t in zip(en, es))
    assert first.sizes.tolist() == [expected] and expected > 29000

    start = time.perf_counter()
    second = build_train_dataset(config, bible_tokenizer, decoder_start_token_id=2)
    second_seconds = time.perf_counter() - start
    assert second.datasets[0].cache_files == first.datasets[0].cache_files
    assert second_seconds < first_seconds / 3
    assert (second.source_lens[0] == first.source_lens[0]).all()

    stats = data_loader_throughput(second, num_batches=20)
    assert stats["batches_per_s"] > 0 and stats["tokens_per_s"] > stats["pairs_per_s"] > 0


def test_edited_corpus_is_read_again(tmp_path, lines_writer, bible_tokenizer):
    src = lines_writer(tmp_path / "train.en", ["a b", "c d"])
    tgt = lines_writer(tmp_path / "train.es", ["x", "y"])
    config = DataConfig.from_dict({"data_dir": str(tmp_path), "lang_pairs": ["en-es"], "batch_size": 64,
                                   "max_len": 16, "buffer_size": 10, "cache_dir": str(tmp_path / "cache"),
                                   "train_corpora": [{"paths": ["train"]}]})
    assert build_train_dataset(config, bible_tokenizer, 2).sizes.tolist() == [2]
    lines_writer(src, ["a b", "c d", "a"])
    lines_writer(tgt, ["x", "y", "x y"])
    os.utime(src, ns=(time.time_ns(), time.time_ns() + 10**9))  # a distinct mtime even on coarse clocks
    assert build_train_dataset(config, bible_tokenizer, 2).sizes.tolist() == [3]
