"""Batches bounded by their padded size, not only by their count.

An encoder pads every text in a batch to the longest one, so the memory a call takes grows with
count x longest. Sorting by length first keeps similar lengths together: short queries still go
through many at a time, while long passages go a few at a time within the same bound.
"""

from __future__ import annotations

from collections.abc import Sequence


def padded_batches(lengths: Sequence[int], max_count: int, max_padded: int) -> list[list[int]]:
    """Indices of the items in batches of at most ``max_count`` items whose count times the
    longest length stays within ``max_padded`` (an item longer than that goes alone)."""
    if max_count < 1 or max_padded < 1:
        raise ValueError("max_count and max_padded must be >= 1")
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in order:
        size = max(int(lengths[i]), 1)
        widest = max(longest, size)
        if current and (len(current) >= max_count or (len(current) + 1) * widest > max_padded):
            batches.append(current)
            current, widest = [], size
        current.append(i)
        longest = widest
    if current:
        batches.append(current)
    return batches
