"""Length-sorted batches for inference: little padding, and outputs put back in input order by the caller."""

from __future__ import annotations

from collections.abc import Sequence

from pasero_hf.data.batching import cut_batches


def length_sorted_batches(
    lengths: Sequence[int], max_tokens: int, max_lines: int | None = None
) -> list[list[int]]:
    """Group indices of `lengths` into batches of similar lengths.

    A batch's size is its padded size, `len(batch) * max(lengths in batch)`, and stays within `max_tokens` (and
    `max_lines`). Unlike training, nothing is dropped: an item longer than `max_tokens` gets a batch of its own.
    Longest items come first, so that running out of memory happens on the first batch rather than the last.
    """
    order = sorted(range(len(lengths)), key=lambda index: (-lengths[index], index))
    return cut_batches(order, [max(length, 1) for length in lengths], max_tokens, max_lines, oversized_alone=True)
