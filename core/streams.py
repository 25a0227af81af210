"""Generators that yield text deltas and *return* their result: the one way to consume them."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TypeVar

R = TypeVar("R")


def drain(gen: Generator[str, None, R], sink: Callable[[str], object] | None = None) -> R:
    """Run ``gen`` to the end, handing each delta to ``sink``; return what it returned."""
    while True:
        try:
            delta = next(gen)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        if sink is not None:
            sink(delta)
