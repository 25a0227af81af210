"""Which words go with cloud gains: a hashed bag of words and word pairs, fitted per labeled set.

The cheap features (``aios.routing.features``) describe a prompt's size and quantitative load
but not its topic, and on many question sets the topic is much of the difficulty (a device
model that is weak at law or chemistry is weak at all of it). This block learns that from the
labeled set itself: each prompt becomes the set of its words and adjacent word pairs, hashed
into a fixed number of buckets (CRC-32, so the same in every process), and a ridge regression
with a cross-validated penalty maps them to the cloud gain. The router uses its output as one
more feature, fitted on held-out predictions (stacking), so a set where words say nothing
(GSM8K's templated math) gives it little weight.

Scoring a prompt hashes its tokens and sums as many weights: tens of microseconds.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence

import numpy as np

from aios.routing.features import HAN_RANGES, window
from aios.routing.ridge import Selection, ridge_path, select_penalty

BUCKETS = 2048
MAX_ROWS = 8_000
# Penalties per training prompt, ascending. Rows have unit norm, so the Gram matrix's scale
# is ~1 per prompt; the heavy end converges to "similarity-weighted mean gain of the labeled
# prompts", which is where GSM8K's noisy labels land.
_PENALTIES = np.array([0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0])
_DEFAULT = len(_PENALTIES) - 1

# Words and single Han characters; numbers are left out, their values are the features' job.
_TOKEN = re.compile(rf"[a-z][a-z']*|[{HAN_RANGES}]")


def buckets(prompt: str) -> np.ndarray:
    """Sorted distinct bucket ids of the prompt's words and adjacent word pairs."""
    tokens = _TOKEN.findall(window(prompt).lower())
    grams = set(tokens)
    grams.update(f"{a} {b}" for a, b in zip(tokens, tokens[1:], strict=False))
    return np.unique(
        np.fromiter((zlib.crc32(g.encode()) % BUCKETS for g in grams), np.int64, len(grams))
    )


def _matrix(prompts: Sequence[str]) -> np.ndarray:
    # Presence, scaled to unit length so a long prompt is not "more" of every topic.
    x = np.zeros((len(prompts), BUCKETS))
    for i, prompt in enumerate(prompts):
        ids = buckets(prompt)
        if len(ids):
            x[i, ids] = 1.0 / np.sqrt(len(ids))
    return x


class WordBag:
    """Linear map from hashed word presence to the expected cloud gain, relative to the mean
    gain of the labeled set (the same scale as the held-out predictions it is stacked on)."""

    def __init__(self, coef: np.ndarray, intercept: float) -> None:
        if coef.shape != (BUCKETS,):
            raise ValueError(f"word-bag weights must have shape ({BUCKETS},), got {coef.shape}")
        self.coef = coef
        self.intercept = float(intercept)

    @classmethod
    def fit(
        cls, prompts: Sequence[str], y: np.ndarray, *, seed: int = 0
    ) -> tuple[WordBag, Selection, np.ndarray]:
        """The fitted bag, its penalty selection, and for every prompt a prediction made
        without that prompt's label: what the router stacks.

        Past ``MAX_ROWS`` prompts the bag is fitted on a seeded sample of that many (its dense
        design matrix grows by 16 KB a prompt, and 2,048 weights gain little from more); the
        prompts left out are predicted by the fitted bag, which never saw them. With too few
        prompts to cross-validate, the predictions are in-sample under the heaviest penalty.
        """
        n = len(y)
        rows = np.arange(n)
        if n > MAX_ROWS:
            rows = np.sort(np.random.default_rng(seed).choice(n, MAX_ROWS, replace=False))
        x = _matrix([prompts[i] for i in rows.tolist()])
        fitted = y[rows]
        selection = select_penalty(x, fitted, _PENALTIES * len(rows), default=_DEFAULT, seed=seed)
        coef, intercept = ridge_path(x, fitted, np.array([selection.penalty]))
        bag = cls(coef[:, 0], float(intercept[0]) - float(fitted.mean()))
        held = np.empty(n)
        if selection.out_of_fold is None:
            held[rows] = x @ bag.coef + bag.intercept
        else:
            held[rows] = selection.out_of_fold
        rest = np.setdiff1d(np.arange(n), rows)
        held[rest] = bag.predict_many([prompts[i] for i in rest])
        return bag, selection, held

    def predict(self, prompt: str) -> float:
        ids = buckets(prompt)
        if not len(ids):
            return self.intercept
        return float(self.coef[ids].sum() / np.sqrt(len(ids)) + self.intercept)

    def predict_many(self, prompts: Sequence[str]) -> np.ndarray:
        return np.array([self.predict(p) for p in prompts], dtype=np.float64)
