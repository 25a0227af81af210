"""The router's score scale: the share of its labeled prompts that a prompt outranks.

A ridge output means nothing to an OEM choosing ``routing.difficulty_threshold``, and a
logistic squash of it only says "0.5 is a typical prompt". Mapped through the quantiles of
the training prompts' outputs instead, a score *t* says "harder than a share *t* of the
labeled prompts", so a threshold *t* keeps about that share of traffic like the labeled set on
the device, and keeps meaning that when the router is re-fitted on new labels.
"""

from __future__ import annotations

import numpy as np

POINTS = 1001  # quantiles stored per artifact: 0.1 % resolution, 8 KB


class PercentileScale:
    """Maps raw router outputs to (0, 1) through the quantiles of the training outputs."""

    def __init__(self, quantiles: np.ndarray, n_train: int) -> None:
        q = np.asarray(quantiles, dtype=np.float64)
        if q.ndim != 1 or len(q) < 2 or not np.all(np.isfinite(q)) or np.any(np.diff(q) < 0):
            raise ValueError("score quantiles must be a finite, non-decreasing list of 2 or more")
        if n_train < 1:
            raise ValueError(f"n_train must be at least 1, got {n_train}")
        self.quantiles = q
        self.n_train = int(n_train)
        grid = np.linspace(0.0, 1.0, len(q))
        # Tied quantiles (many prompts with one output) take their mid-rank, so interpolation
        # runs over strictly increasing points.
        self._x, inverse = np.unique(q, return_inverse=True)
        self._p = np.bincount(inverse, weights=grid) / np.bincount(inverse)

    @classmethod
    def fit(cls, raw: np.ndarray, points: int = POINTS) -> PercentileScale:
        raw = np.asarray(raw, dtype=np.float64)
        return cls(np.quantile(raw, np.linspace(0.0, 1.0, points)), len(raw))

    def __call__(self, raw: np.ndarray, tiebreak: np.ndarray | float = 0.5) -> np.ndarray:
        """Scores in (0, 1). ``tiebreak``, in (0, 1) and increasing with ``raw`` (the router
        passes a logistic of its standardized output), adds at most one training prompt's
        worth: prompts past the ends of the training range, flat in the quantiles, keep
        their order instead of tying, so ranking is never worse than the raw output's."""
        raw = np.asarray(raw, dtype=np.float64)
        if len(self._x) == 1:  # every training prompt scored the same: nothing to rank by
            p = np.full(raw.shape, 0.5)
        else:
            p = np.interp(raw, self._x, self._p)
        # Open interval: a prompt past every training prompt stays under 1, so a threshold of
        # 1.0 still means "never the cloud".
        return (p * self.n_train + tiebreak) / (self.n_train + 1)
