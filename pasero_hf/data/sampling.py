"""Corpus sampling probabilities for multilingual training (Pasero's temperature sampling).

The size of a corpus is its number of pairs times its multiplier. Temperature applies per language pair:
P(pair) ∝ size(pair) ** (1 / T), shared between the pair's corpora in proportion to their sizes (with one corpus
per pair this is p_i ∝ (n_i · multiplier_i) ** (1 / T)). Corpora with an explicit `probability` get exactly it;
the others share what remains.
"""

from collections.abc import Sequence

import numpy as np


def corpus_probabilities(
    sizes: Sequence[int],
    lang_pairs: Sequence[str],
    multipliers: Sequence[float],
    fixed: Sequence[float | None],
    temperature: float = 1.0,
) -> np.ndarray:
    """Sampling probability of each corpus (sums to 1).

    Args:
        sizes: number of pairs of each corpus.
        lang_pairs: language pair of each corpus (temperature applies to pair totals).
        multipliers: size multiplier of each corpus.
        fixed: explicit probability of each corpus, or None.
        temperature: T above.
    """
    sizes = np.asarray(sizes, dtype=np.float64) * np.asarray(multipliers, dtype=np.float64)
    is_fixed = np.array([p is not None for p in fixed])
    weights = np.where(is_fixed, 0.0, sizes)
    probs = np.zeros(len(sizes))
    pairs = list(dict.fromkeys(lang_pairs))
    pair_of = np.array([pairs.index(pair) for pair in lang_pairs])
    pair_totals = np.array([weights[pair_of == i].sum() for i in range(len(pairs))])
    pair_probs = pair_totals ** (1.0 / temperature)
    if pair_probs.sum() > 0:
        pair_probs /= pair_probs.sum()
        for i in range(len(pairs)):
            members = (pair_of == i) & ~is_fixed
            if pair_totals[i] > 0:
                probs[members] = pair_probs[i] * weights[members] / pair_totals[i]
    fixed_total = sum(p for p in fixed if p is not None)
    if fixed_total > 1 + 1e-9:
        raise ValueError(f"the explicit corpus probabilities sum to {fixed_total:.4f} > 1")
    probs *= 1.0 - fixed_total
    probs[is_fixed] = [p for p in fixed if p is not None]
    if probs.sum() <= 0:
        raise ValueError("all corpus sampling probabilities are zero")
    return probs / probs.sum()
