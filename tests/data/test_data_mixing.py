"""Temperature-based corpus mixing: empirical proportions over many batches match p_i ∝ n_i ** (1/T)."""

from collections import Counter

import numpy as np
import pytest

from pasero_hf.data import build_train_dataset
from pasero_hf.data.sampling import corpus_probabilities

TARGETS = ["ar", "de", "fr", "ko"]  # 782, 4213, 10802 and 1036 lines


def _line_counts(iso_dir) -> np.ndarray:
    counts = []
    for lang in TARGETS:
        sources = (iso_dir / f"en-{lang}" / "train.en").read_text(encoding="utf-8").splitlines()
        targets = (iso_dir / f"en-{lang}" / f"train.{lang}").read_text(encoding="utf-8").splitlines()
        counts.append(sum(bool(s.strip()) and bool(t.strip()) for s, t in zip(sources, targets)))
    return np.array(counts, dtype=np.float64)


def _empirical(stream, num_pairs: int) -> np.ndarray:
    counts: Counter = Counter()
    iterator = iter(stream)
    while sum(counts.values()) < num_pairs:
        batch = next(iterator)
        counts[batch["target_lang"]] += batch["input_ids"].shape[0]
    return np.array([counts[lang] for lang in TARGETS]) / sum(counts.values())


@pytest.mark.parametrize("temperature", [1.0, 5.0])
def test_empirical_proportions_follow_temperature(iso_config, iso_tokenizer, iso_dir, temperature):
    config = iso_config(targets=TARGETS, lang_temperature=temperature, batch_by="target_lang", batch_size=1024,
                        max_len=128)
    stream = build_train_dataset(config, iso_tokenizer, decoder_start_token_id=2)
    sizes = _line_counts(iso_dir)
    assert stream.sizes.tolist() == sizes.tolist()
    expected = sizes ** (1 / temperature) / (sizes ** (1 / temperature)).sum()
    np.testing.assert_allclose(stream.probabilities, expected, rtol=1e-9)
    observed = _empirical(stream, 40_000)
    np.testing.assert_allclose(observed, expected, atol=0.015)


def test_temperature_flattens_the_distribution(iso_dir):
    sizes = _line_counts(iso_dir)
    pairs = [f"en-{lang}" for lang in TARGETS]
    ones = [1.0] * 4
    p1 = corpus_probabilities(sizes, pairs, ones, [None] * 4, 1.0)
    p100 = corpus_probabilities(sizes, pairs, ones, [None] * 4, 100.0)
    assert p1[0] < 0.05 and abs(p100[0] - 0.25) < 0.02  # Arabic: 782 of 16833 lines
    assert np.isclose(p1.sum(), 1) and np.isclose(p100.sum(), 1)


def test_multiplier_and_fixed_probability(iso_dir):
    sizes = _line_counts(iso_dir)
    pairs = [f"en-{lang}" for lang in TARGETS]
    doubled = corpus_probabilities(sizes, pairs, [2.0, 1.0, 1.0, 1.0], [None] * 4, 1.0)
    weights = sizes * [2, 1, 1, 1]
    np.testing.assert_allclose(doubled, weights / weights.sum())
    fixed = corpus_probabilities(sizes, pairs, [1.0] * 4, [0.5, None, None, None], 1.0)
    assert fixed[0] == pytest.approx(0.5)
    np.testing.assert_allclose(fixed[1:], 0.5 * sizes[1:] / sizes[1:].sum())
    with pytest.raises(ValueError, match="sum to 1.2"):
        corpus_probabilities(sizes, pairs, [1.0] * 4, [0.6, 0.6, None, None], 1.0)


def test_explicit_probability_in_the_stream(iso_config, iso_tokenizer):
    config = iso_config(targets=["de", "fr"], batch_by="target_lang",
                        train_corpora=[{"paths": ["{pair}/train"], "lang_pairs": ["en-de"], "probability": 0.7},
                                       {"paths": ["{pair}/train"], "lang_pairs": ["en-fr"]}])
    stream = build_train_dataset(config, iso_tokenizer, decoder_start_token_id=2)
    counts: Counter = Counter()
    iterator = iter(stream)
    while sum(counts.values()) < 20_000:
        batch = next(iterator)
        counts[batch["target_lang"]] += batch["input_ids"].shape[0]
    assert counts["de"] / sum(counts.values()) == pytest.approx(0.7, abs=0.02)
