"""Token-based batching of the training stream on the bundled iso-codes corpora and the Bible corpus."""

import numpy as np
import pytest
import torch

from pasero_hf.data import build_train_dataset
from pasero_hf.data.batching import cut_batches

EOS, PAD, START = 2, 1, 2
WITH_LANG_CODES = ["ar", "de", "fr", "it", "ja", "ko", "ru"]  # TED-top20 has no <lang:zh>


def _pairs(batch):
    """Unpadded (source ids, label ids, decoder input ids) of each row."""
    rows = []
    for i in range(batch["input_ids"].shape[0]):
        source = batch["input_ids"][i][batch["attention_mask"][i].bool()].tolist()
        keep = batch["labels"][i] != -100
        rows.append((source, batch["labels"][i][keep].tolist(), batch["decoder_input_ids"][i][keep].tolist()))
    return rows


def test_cut_batches_counts_padded_tokens():
    # costs 3,3,5,2,2,2 with 10 tokens: [3,3] (2x3=6, adding 5 would make 3x5=15), [5,2] (2x5), [2,2,2]
    assert cut_batches(range(6), [3, 3, 5, 2, 2, 2], 10) == [[0, 1], [2, 3], [4, 5]]
    assert cut_batches(range(6), [1] * 6, 10, lines_per_batch=4) == [[0, 1, 2, 3], [4, 5]]
    with pytest.raises(ValueError, match="does not fit"):
        cut_batches([0], [11], 10)


def test_batches_respect_token_budget_padding_and_shift(iso_config, iso_tokenizer):
    config = iso_config(targets=WITH_LANG_CODES, lang_code=True, batch_by="target_lang")
    stream = build_train_dataset(config, iso_tokenizer, decoder_start_token_id=START)
    iterator = iter(stream)
    for _ in range(50):
        batch = next(iterator)
        n, source_width = batch["input_ids"].shape
        target_width = batch["labels"].shape[1]
        assert n * max(source_width, target_width) <= 256
        assert batch["input_ids"].dtype == torch.long and batch["labels"].shape == batch["decoder_input_ids"].shape
        lang_code = iso_tokenizer.convert_tokens_to_ids(f"<lang:{batch['target_lang']}>")
        for source, labels, decoder_inputs in _pairs(batch):
            assert source[0] == lang_code and source[-1] == EOS and labels[-1] == EOS
            assert decoder_inputs == [START] + labels[:-1]
        padded = ~batch["attention_mask"].bool()
        assert (batch["input_ids"][padded] == PAD).all()
        assert ((batch["labels"] == -100) == (batch["decoder_input_ids"] == PAD)).all()


def test_length_sorting_keeps_padding_low(iso_config, iso_tokenizer):
    stream = build_train_dataset(iso_config(), iso_tokenizer, decoder_start_token_id=START)
    iterator = iter(stream)
    real = padded = 0
    for _ in range(100):
        batch = next(iterator)
        real += int(batch["attention_mask"].sum())
        padded += batch["attention_mask"].numel()
    assert real / padded > 0.9


@pytest.mark.parametrize("batch_by", ["target_lang", "lang_pair", "domain"])
def test_batch_by_makes_homogeneous_batches(iso_config, iso_tokenizer, batch_by):
    config = iso_config(targets=WITH_LANG_CODES, batch_by=batch_by)
    stream = build_train_dataset(config, iso_tokenizer, decoder_start_token_id=START)
    iterator = iter(stream)
    for _ in range(40):
        batch = next(iterator)
        assert batch["source_lang"] == "en" and batch["domain"] == "train"
        if batch_by == "domain":  # every iso-codes corpus has domain "train": languages mix
            continue
        assert batch["target_lang"] in WITH_LANG_CODES
        lang_code = iso_tokenizer.convert_tokens_to_ids(f"<lang:{batch['target_lang']}>")
        assert lang_code not in batch["input_ids"]  # lang_code is off by default


def test_without_batch_by_mixed_batches_have_no_target_lang(iso_config, iso_tokenizer):
    stream = build_train_dataset(iso_config(), iso_tokenizer, decoder_start_token_id=START)
    iterator = iter(stream)
    target_langs = {next(iterator)["target_lang"] for _ in range(40)}
    assert None in target_langs  # large batches mix languages: no single target_lang


def test_every_pair_once_per_epoch(iso_config, iso_tokenizer, iso_dir):
    # One corpus, buffer = corpus size: the first buffer is exactly one shuffled epoch.
    lines = (iso_dir / "en-ko" / "train.ko").read_text(encoding="utf-8").splitlines()
    config = iso_config(targets=["ko"], buffer_size=len(lines), max_len=256, batch_size=1024)
    stream = build_train_dataset(config, iso_tokenizer, decoder_start_token_id=START)
    assert stream.sizes.tolist() == [len(lines)]
    plan, _ = stream._buffer_batches(0, np.zeros(1, dtype=np.int64))
    seen = [example for batch in plan for example in batch]
    assert sorted(i for _, i in seen) == list(range(len(lines)))
    labels = []
    iterator = iter(stream)
    for _ in plan:
        labels += [tuple(row_labels) for _, row_labels, _ in _pairs(next(iterator))]
    expected = [tuple(ids) for ids in iso_tokenizer(text_target=[line.strip() for line in lines])["input_ids"]]
    assert sorted(labels) == sorted(expected)


def test_buffer_larger_than_the_data_never_puts_copies_of_a_pair_in_one_batch(iso_config, iso_tokenizer, iso_dir):
    # A 10x-too-large buffer would hold 10 epochs of en-ko at once; length sorting would then batch the copies of
    # each pair together. The stream caps the buffer at one pass over the data instead.
    lines = (iso_dir / "en-ko" / "train.ko").read_text(encoding="utf-8").splitlines()
    config = iso_config(targets=["ko"], buffer_size=10 * len(lines), max_len=256, batch_size=1024)
    stream = build_train_dataset(config, iso_tokenizer, decoder_start_token_id=START)
    plan, draws = stream._buffer_batches(0, np.zeros(1, dtype=np.int64))
    assert int(draws[0]) == len(lines)
    assert all(len(set(batch)) == len(batch) for batch in plan)


def test_train_length_filter_and_ratio(iso_config, iso_tokenizer):
    config = iso_config(targets=["de"], max_source_len=5, max_target_len=4, min_len_ratio=0.5, max_len_ratio=1.5)
    stream = build_train_dataset(config, iso_tokenizer, decoder_start_token_id=START)
    source_lens, target_lens = stream.source_lens[0], stream.target_lens[0]
    ratio = source_lens / target_lens
    assert source_lens.max() <= 5 and target_lens.max() <= 4
    assert ratio.min() >= 0.5 and ratio.max() <= 1.5
    # compare with the unfiltered tokenization of the same files
    en = (iso_config().data_dir + "/en-de/train.en")
    de = en[:-2] + "de"
    pairs = zip(open(en, encoding="utf-8").read().splitlines(), open(de, encoding="utf-8").read().splitlines())
    expected = 0
    for source, target in pairs:
        if source.strip() and target.strip():
            s, t = len(iso_tokenizer(source)["input_ids"]), len(iso_tokenizer(text_target=target)["input_ids"])
            expected += s <= 5 and t <= 4 and 0.5 <= s / t <= 1.5
    assert stream.sizes.tolist() == [expected] and 0 < expected < 4213


def test_sorted_batches_without_shuffle_are_deterministic_in_order(iso_config, iso_tokenizer):
    config = iso_config(targets=["ar"], shuffle=False, buffer_size=500)
    stream = build_train_dataset(config, iso_tokenizer, decoder_start_token_id=START)
    iterator = iter(stream)
    widths = [next(iterator)["input_ids"].shape[1] for _ in range(5)]
    assert widths == sorted(widths)


def test_lang_code_missing_from_the_vocabulary_is_an_error(iso_config, iso_tokenizer):
    with pytest.raises(ValueError, match=r"lang_code is set but the tokenizer's vocabulary has no token <lang:zh>"):
        build_train_dataset(iso_config(targets=["de", "zh"], lang_code=True), iso_tokenizer, START)


def test_language_codes_come_from_the_tokenizer_per_corpus(iso_config, fixtures_dir):
    from pasero_hf.tokenization import PaseroTokenizer

    directory = fixtures_dir / "pasero-models" / "TED-top20"
    tokenizer = PaseroTokenizer(bpe_file=str(directory / "bpecodes"), dict_file=str(directory / "dict.txt"),
                                src_lang="en", tgt_lang="fr", lang_code=True, target_lang_code=True)
    config = iso_config(targets=["de", "ja"], lang_code=True, batch_by="target_lang")
    stream = build_train_dataset(config, tokenizer, decoder_start_token_id=START)
    iterator = iter(stream)
    for _ in range(20):
        batch = next(iterator)
        code = tokenizer.convert_tokens_to_ids(f"<lang:{batch['target_lang']}>")
        for source, labels, _ in _pairs(batch):
            # the tokenizer put <lang:tgt> first in both; lang_code=True in the config did not add a second one
            assert source[0] == code and source[1] != code and labels[0] == code
