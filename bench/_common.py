"""Helpers the benchmark scripts share (run them from the repository root)."""

from __future__ import annotations

import sys
from typing import Any


def err(*parts: Any) -> None:
    """Progress and tables go to stderr, so ``--json`` leaves exactly one object on stdout."""
    print(*parts, file=sys.stderr)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]
