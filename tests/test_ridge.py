"""Ridge path and cross-validated penalty choice used by the difficulty router."""

from __future__ import annotations

import numpy as np

from aios.routing.ridge import MIN_PROMPTS_FOR_CV, ridge_path, select_penalty

GRID = np.array([0.01, 0.1, 1.0, 10.0, 100.0, 1000.0])


def _closed_form(x: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    a = x - x.mean(axis=0)
    return np.linalg.solve(a.T @ a + lam * np.eye(x.shape[1]), a.T @ (y - y.mean()))


def test_primal_and_dual_forms_match_the_closed_form() -> None:
    rng = np.random.default_rng(0)
    for n, p in ((80, 5), (20, 60)):  # more prompts than columns, then fewer
        x = rng.normal(size=(n, p))
        y = rng.normal(size=n)
        coef, intercept = ridge_path(x, y, GRID)
        for j, lam in enumerate(GRID):
            np.testing.assert_allclose(coef[:, j], _closed_form(x, y, lam), atol=1e-8)
            np.testing.assert_allclose(x.mean(0) @ coef[:, j] + intercept[j], y.mean())


def test_a_clear_signal_gets_a_light_penalty_and_noise_the_heaviest() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 10))
    signal = x @ rng.normal(size=10) + 0.1 * rng.normal(size=400)
    clear = select_penalty(x, signal, GRID, default=0)
    assert clear.penalty <= 10.0 and max(clear.cv_corr) > 0.9
    noise = select_penalty(x, rng.normal(size=400), GRID, default=0)
    assert noise.penalty == GRID[-1]
    # Held-out predictions are centered per fold, so they rank by content, not by fold.
    assert clear.out_of_fold is not None
    assert np.corrcoef(clear.out_of_fold, signal)[0, 1] > 0.9


def test_too_few_prompts_take_the_default_without_cross_validation() -> None:
    x = np.arange(2 * (MIN_PROMPTS_FOR_CV - 1), dtype=float).reshape(-1, 2)
    sel = select_penalty(x, x[:, 0], GRID, default=2)
    assert sel.penalty == GRID[2] and sel.cv_corr == [] and sel.out_of_fold is None
