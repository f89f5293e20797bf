"""Token-based, length-bucketed batching and the collation of tokenized pairs into model inputs.

Batch size counts padded tokens, as Pasero and fairseq do: a pair costs ``max(source_len, target_len)`` and a batch
``n_pairs * max cost``; pairs are sorted by (source length, target length) before cutting, so batches hold pairs of
similar lengths and little padding.
"""

from collections.abc import Sequence
from typing import Optional

import numpy as np
import torch

META_KEYS = ("source_lang", "target_lang", "domain")


def cut_batches(
    order: Sequence[int], cost: Sequence[int], batch_size: int, lines_per_batch: Optional[int] = None
) -> list[list[int]]:
    """Split `order` (indices into `cost`) into consecutive batches whose padded size is at most `batch_size`."""
    batches: list[list[int]] = []
    batch: list[int] = []
    longest = 0
    for index in order:
        size = int(cost[index])
        if size > batch_size:
            raise ValueError(f"a pair of {size} tokens does not fit in batch_size={batch_size}")
        if batch and (max(longest, size) * (len(batch) + 1) > batch_size or
                      (lines_per_batch and len(batch) >= lines_per_batch)):
            batches.append(batch)
            batch, longest = [], 0
        batch.append(index)
        longest = max(longest, size)
    if batch:
        batches.append(batch)
    return batches


def length_sorted_batches(
    source_lens: np.ndarray,
    target_lens: np.ndarray,
    batch_size: int,
    lines_per_batch: Optional[int] = None,
    rng: Optional[np.random.Generator] = None,
) -> list[list[int]]:
    """Batches of indices of similar lengths; with `rng`, ties are broken randomly (otherwise by index)."""
    order = rng.permutation(len(source_lens)) if rng is not None else np.arange(len(source_lens))
    order = order[np.argsort(target_lens[order], kind="stable")]
    order = order[np.argsort(source_lens[order], kind="stable")]
    return cut_batches(order, np.maximum(source_lens, target_lens), batch_size, lines_per_batch)


def _pad(sequences: Sequence[Sequence[int]], value: int) -> torch.Tensor:
    width = max(len(seq) for seq in sequences)
    padded = torch.full((len(sequences), width), value, dtype=torch.long)
    for row, seq in enumerate(sequences):
        padded[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
    return padded


def collate_pairs(
    input_ids: Sequence[Sequence[int]],
    labels: Sequence[Sequence[int]],
    pad_token_id: int,
    decoder_start_token_id: int,
    meta: Optional[dict[str, Optional[str]]] = None,
) -> dict:
    """Model inputs for a list of tokenized pairs (right padding).

    Returns ``input_ids``, ``attention_mask``, ``labels`` (padded with -100, ignored by the loss),
    ``decoder_input_ids`` (labels shifted right after `decoder_start_token_id`, padded with `pad_token_id`) and the
    string entries of `meta` (``source_lang``, ``target_lang``, ``domain``: None where the batch mixes values).
    """
    if not input_ids:
        raise ValueError("cannot collate an empty batch")
    decoder_input_ids = [[decoder_start_token_id] + list(seq[:-1]) for seq in labels]
    batch = {
        "input_ids": _pad(input_ids, pad_token_id),
        "attention_mask": _pad([[1] * len(seq) for seq in input_ids], 0),
        "labels": _pad(labels, -100),
        "decoder_input_ids": _pad(decoder_input_ids, pad_token_id),
    }
    batch.update(meta or {})
    return batch


def common_meta(metas: Sequence[dict[str, str]]) -> dict[str, Optional[str]]:
    """The value of each meta key shared by all `metas`, or None where they differ."""
    return {
        key: metas[0][key] if all(meta[key] == metas[0][key] for meta in metas) else None for key in META_KEYS
    }
