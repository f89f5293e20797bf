"""Length-sorted batches for inference: little padding, and outputs put back in input order by the caller."""

from __future__ import annotations

from collections.abc import Sequence


def length_sorted_batches(
    lengths: Sequence[int], max_tokens: int, max_lines: int | None = None
) -> list[list[int]]:
    """Group indices of `lengths` into batches of similar lengths.

    A batch's size is its padded size, `len(batch) * max(lengths in batch)`, and stays within `max_tokens` (and
    `max_lines`). Unlike training, nothing is dropped: an item longer than `max_tokens` gets a batch of its own.
    Longest items come first, so that running out of memory happens on the first batch rather than the last.
    """
    order = sorted(range(len(lengths)), key=lambda index: (-lengths[index], index))
    batches: list[list[int]] = []
    batch: list[int] = []
    longest = 0
    for index in order:
        length = max(lengths[index], 1)
        new_longest = max(longest, length)
        full = max_lines is not None and len(batch) >= max_lines
        if batch and (full or new_longest * (len(batch) + 1) > max_tokens):
            batches.append(batch)
            batch, new_longest = [], length
        batch.append(index)
        longest = new_longest
    if batch:
        batches.append(batch)
    return batches
