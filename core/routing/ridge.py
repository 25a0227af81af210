"""Ridge regression over a grid of penalties, with the penalty chosen by cross-validation.

Per-prompt routing labels are noisy (one correct/incorrect bit per tier), so the best penalty
depends on the labeled set: on GSM8K's 650 training prompts heavy shrinkage wins, while a set
with a clearer signal or many more prompts can afford a lighter one. ``select_penalty`` picks it
on the training data alone: K-fold correlation between held-out predictions and the target, then
the *heaviest* penalty within one standard error of the best (the one-standard-error rule),
because a fold-to-fold wobble is not worth a noisier model.

One eigendecomposition per fold serves the whole grid, in whichever of the primal (features x
features) or dual (prompts x prompts) form is smaller.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Below this many prompts a 5-fold correlation is too noisy to choose anything.
MIN_PROMPTS_FOR_CV = 40
FOLDS = 5


def ridge_path(
    x: np.ndarray, y: np.ndarray, penalties: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients (features, len(penalties)) and intercepts (len(penalties),).

    The intercept is not penalized: columns and target are centered first.
    """
    x_mean = x.mean(axis=0)
    y_mean = float(y.mean())
    a = x - x_mean
    yc = y - y_mean
    n, p = a.shape
    if n < p:
        # Dual form: w = A^T (A A^T + lam I)^-1 y.
        s, u = np.linalg.eigh(a @ a.T)
        s = np.maximum(s, 0.0)  # round-off can make a zero eigenvalue slightly negative
        uy = u.T @ yc
        coef = a.T @ (u @ (uy[:, None] / (s[:, None] + penalties[None, :])))
    else:
        s, v = np.linalg.eigh(a.T @ a)
        s = np.maximum(s, 0.0)
        vy = v.T @ (a.T @ yc)
        coef = v @ (vy[:, None] / (s[:, None] + penalties[None, :]))
    return coef, y_mean - x_mean @ coef


@dataclass(frozen=True)
class Selection:
    """The chosen penalty, its index in the grid, and what cross-validation saw."""

    penalty: float
    index: int
    cv_corr: list[float]  # mean held-out correlation per penalty ([] when CV was skipped)
    # Held-out predictions at the chosen penalty, each minus its fold's mean training target:
    # under heavy shrinkage the predictions barely move off that mean, so raw ones would be
    # ranked by which fold they came from rather than by what the model saw.
    out_of_fold: np.ndarray | None


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    if a.std() < 1e-12 or b.std() < 1e-12:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def select_penalty(
    x: np.ndarray, y: np.ndarray, penalties: np.ndarray, *, default: int, seed: int = 0
) -> Selection:
    """Choose among ``penalties`` (ascending) by K-fold CV; ``default`` indexes the grid
    entry used when there are too few prompts to cross-validate."""
    n = len(y)
    if n < MIN_PROMPTS_FOR_CV:
        return Selection(float(penalties[default]), default, [], None)
    folds = np.array_split(np.random.default_rng(seed).permutation(n), FOLDS)
    held = np.zeros((len(penalties), n))
    corr = np.zeros((FOLDS, len(penalties)))
    for f, test in enumerate(folds):
        train = np.setdiff1d(np.arange(n), test)
        # Penalties scale with the number of prompts fitted, so a fold uses its own share.
        coef, intercept = ridge_path(x[train], y[train], penalties * len(train) / n)
        pred = x[test] @ coef + intercept
        held[:, test] = (pred - y[train].mean()).T
        corr[f] = [_corr(pred[:, j], y[test]) for j in range(len(penalties))]
    mean = corr.mean(axis=0)
    best = int(mean.argmax())
    se = float(corr[:, best].std() / np.sqrt(FOLDS))
    index = max(j for j in range(len(penalties)) if mean[j] >= mean[best] - se)
    return Selection(float(penalties[index]), index, [float(m) for m in mean], held[index])
