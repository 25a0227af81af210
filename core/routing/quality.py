"""Routing quality: the quality-cost curve of a router's scores and its summary figures.

``device_share_at_95`` is the largest share of prompts kept on the device while accuracy stays
at or above 95 % of cloud-only accuracy; ``apgr`` is RouteLLM's average performance gap
recovered. Random routing's expectation is the baseline every router is compared with.
``evaluate`` also says which score threshold reaches each point (``score >= threshold`` goes
to the cloud), the number an OEM puts in ``routing.difficulty_threshold``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from aios.routing.labeled import check_labels

__all__ = ["evaluate", "random_baseline"]


def _order(scores: np.ndarray) -> np.ndarray:
    # Ties: higher score first, then lower index, so results never depend on sort internals.
    return np.lexsort((np.arange(len(scores)), -scores))


def _accuracy_curve(scores: np.ndarray, device: np.ndarray, cloud: np.ndarray) -> np.ndarray:
    """accuracy(k) for k = 0..n, sending the k highest-scored prompts to the cloud."""
    n = len(scores)
    gain = cloud.astype(np.int64) - device.astype(np.int64)
    cum = np.concatenate(([0], np.cumsum(gain[_order(scores)])))
    return (int(device.sum()) + cum) / n


def _threshold(ranked: np.ndarray, k: int) -> float | None:
    """With ``ranked`` the scores highest first: the threshold at which ``score >= threshold``
    sends the k highest-scored prompts to the cloud (fewer or more only where scores tie).
    Midway between neighbours, so a prompt scored a little differently does not flip; None
    for k = 0 (only a threshold above every score sends nothing)."""
    if k == 0:
        return None
    if k == len(ranked):
        return float(ranked[-1])
    return float((ranked[k - 1] + ranked[k]) / 2)


def _summary(acc: np.ndarray, a_d: float, a_c: float) -> dict[str, float]:
    n = len(acc) - 1
    share = 1.0 - np.arange(n + 1) / n
    eps = 1e-12  # accuracies are ratios of integers; guard the == case against rounding
    ok95 = acc >= 0.95 * a_c - eps
    ok100 = acc >= a_c - eps
    gap = a_c - a_d
    if gap != 0:
        # Trapezoid over a uniform cloud-share grid; written out because numpy<2 lacks trapezoid.
        pgr = (acc - a_d) / gap
        apgr = float((pgr[:-1] + pgr[1:]).sum() / (2 * n))
    else:
        apgr = math.nan
    return {
        "device_share_at_95": float(share[ok95].max()) if ok95.any() else 0.0,
        "device_share_at_100": float(share[ok100].max()) if ok100.any() else 0.0,
        "apgr": apgr,
    }


def _curve_points(
    acc: np.ndarray, points: int, ranked: np.ndarray | None = None
) -> list[dict[str, Any]]:
    n = len(acc) - 1
    out = []
    for share in np.linspace(1.0, 0.0, points):
        k = int(round((1.0 - share) * n))
        point: dict[str, Any] = {"device_share": round(float(share), 6), "accuracy": float(acc[k])}
        if ranked is not None:
            point["threshold"] = _threshold(ranked, k)
        out.append(point)
    return out


def evaluate(
    scores: Sequence[float] | np.ndarray,
    device_correct: Sequence[bool] | np.ndarray,
    cloud_correct: Sequence[bool] | np.ndarray,
    *,
    curve_points: int = 21,
) -> dict[str, Any]:
    """Routing quality of ``scores`` (higher = send to cloud first).

    ``apgr`` is NaN when both tiers have the same accuracy (no gap to recover).
    ``threshold_at_95``/``_100`` and each curve point's ``threshold`` are the score from which
    prompts go to the cloud at that point; None where nothing goes to the cloud.
    """
    d, c = check_labels(device_correct, cloud_correct)
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != d.shape:
        raise ValueError(f"scores shape {s.shape} does not match labels {d.shape}")
    a_d, a_c = float(d.mean()), float(c.mean())
    acc = _accuracy_curve(s, d, c)
    summary = _summary(acc, a_d, a_c)
    ranked = s[_order(s)]
    n = len(d)
    at = {}
    for level in (95, 100):
        to_cloud = int(round((1.0 - summary[f"device_share_at_{level}"]) * n))
        at[f"threshold_at_{level}"] = _threshold(ranked, to_cloud)
    return {
        "n": n,
        "device_accuracy": a_d,
        "cloud_accuracy": a_c,
        **summary,
        **at,
        "curve": _curve_points(acc, curve_points, ranked),
    }


def random_baseline(
    device_correct: Sequence[bool] | np.ndarray,
    cloud_correct: Sequence[bool] | np.ndarray,
    seed: int = 0,
    *,
    permutations: int = 200,
    curve_points: int = 21,
) -> dict[str, Any]:
    """Expected metrics of random routing: the mean over ``permutations`` seeded shuffles."""
    d, c = check_labels(device_correct, cloud_correct)
    rng = np.random.default_rng(seed)
    a_d, a_c = float(d.mean()), float(c.mean())
    gain = c.astype(np.int64) - d.astype(np.int64)
    sums: dict[str, float] = {"device_share_at_95": 0.0, "device_share_at_100": 0.0, "apgr": 0.0}
    mean_acc = np.zeros(len(d) + 1)
    for _ in range(permutations):
        acc = (
            int(d.sum()) + np.concatenate(([0], np.cumsum(gain[rng.permutation(len(d))])))
        ) / len(d)
        mean_acc += acc / permutations
        for key, value in _summary(acc, a_d, a_c).items():
            sums[key] += value / permutations
    return {
        "n": len(d),
        "device_accuracy": a_d,
        "cloud_accuracy": a_c,
        **sums,
        "curve": _curve_points(mean_acc, curve_points),
    }
