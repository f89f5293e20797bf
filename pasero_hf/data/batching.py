"""Token-based, length-bucketed batching and the collation of tokenized pairs into model inputs.

Batch size counts padded tokens, as Pasero and fairseq do: a pair costs ``max(source_len, target_len)`` and a batch
``n_pairs * max cost``; pairs are sorted by (source length, target length) before cutting, so batches hold pairs of
similar lengths and little padding.
"""

import itertools
from collections.abc import Sequence

import numpy as np
import torch

META_KEYS = ("source_lang", "target_lang", "domain")


def cut_batches(
    order: Sequence[int], cost: Sequence[int], batch_size: int, lines_per_batch: int | None = None,
    oversized_alone: bool = False,
) -> list[list[int]]:
    """Split `order` (indices into `cost`) into consecutive batches whose padded size is at most `batch_size`.

    An item costing more than `batch_size` is an error, or with `oversized_alone` (inference, which drops nothing) a
    batch of its own."""
    batches: list[list[int]] = []
    batch: list[int] = []
    longest = 0
    for index in order:
        size = int(cost[index])
        if size > batch_size and not oversized_alone:
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
    lines_per_batch: int | None = None,
    rng: np.random.Generator | None = None,
) -> list[list[int]]:
    """Batches of indices of similar lengths; with `rng`, ties are broken randomly (otherwise by index)."""
    order = rng.permutation(len(source_lens)) if rng is not None else np.arange(len(source_lens))
    order = order[np.argsort(target_lens[order], kind="stable")]
    order = order[np.argsort(source_lens[order], kind="stable")]
    return cut_batches(order, np.maximum(source_lens, target_lens), batch_size, lines_per_batch)


def truncate_keeping_eos(ids: list[int], limit: int, eos_id: int | None) -> list[int]:
    """The first `limit` tokens of `ids`; the last one stays EOS if `ids` ends with one (as Pasero truncates)."""
    if len(ids) <= limit:
        return ids
    if eos_id is not None and ids[-1] == eos_id:
        return ids[: limit - 1] + [eos_id]
    return ids[:limit]


def _pad(sequences: Sequence[Sequence[int]], value: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(right-padded LongTensor, boolean mask of the real tokens)."""
    lengths = np.fromiter((len(seq) for seq in sequences), dtype=np.int64, count=len(sequences))
    mask = np.arange(lengths.max()) < lengths[:, None]
    padded = np.full(mask.shape, value, dtype=np.int64)
    padded[mask] = np.fromiter(itertools.chain.from_iterable(sequences), dtype=np.int64, count=int(lengths.sum()))
    return torch.from_numpy(padded), torch.from_numpy(mask)


def collate_pairs(
    input_ids: Sequence[Sequence[int]],
    labels: Sequence[Sequence[int]],
    pad_token_id: int,
    decoder_start_token_id: int,
    meta: dict[str, str | None] | None = None,
) -> dict:
    """Model inputs for a list of tokenized pairs (right padding).

    Returns ``input_ids``, ``attention_mask``, ``labels`` (padded with -100, ignored by the loss),
    ``decoder_input_ids`` (labels shifted right after `decoder_start_token_id`, padded with `pad_token_id`) and the
    string entries of `meta` (``source_lang``, ``target_lang``, ``domain``: None where the batch mixes values).
    """
    if not input_ids:
        raise ValueError("cannot collate an empty batch")
    padded_inputs, input_mask = _pad(input_ids, pad_token_id)
    padded_labels, label_mask = _pad(labels, -100)
    decoder_input_ids = torch.full_like(padded_labels, pad_token_id)
    decoder_input_ids[:, 0] = decoder_start_token_id
    decoder_input_ids[:, 1:] = padded_labels[:, :-1]
    decoder_input_ids[~label_mask] = pad_token_id
    batch = {
        "input_ids": padded_inputs,
        "attention_mask": input_mask.long(),
        "labels": padded_labels,
        "decoder_input_ids": decoder_input_ids,
    }
    batch.update(meta or {})
    return batch


def common_meta(metas: Sequence[dict[str, str]]) -> dict[str, str | None]:
    """The value of each meta key shared by all `metas`, or None where they differ."""
    return {
        key: metas[0][key] if all(meta[key] == metas[0][key] for meta in metas) else None for key in META_KEYS
    }
