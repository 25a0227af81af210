"""Learned difficulty router: predicts where sending a prompt to the cloud pays off.

The model is a ridge regression on standardized cheap text features (``aios.routing.features``),
one stacked word-bag score (``aios.routing.wordbag``: which words go with cloud gains in this
labeled set) and optionally a low-rank projection of a sentence embedding. Its target is the
per-prompt *gain* of the cloud tier, ``cloud_correct - device_correct`` (+1, 0 or -1). That
target beat "device wrong" and "device wrong and cloud right" on held-out data because it also
pushes down prompts the cloud gets wrong too, where routing to the cloud buys nothing. Both
ridge penalties are chosen by cross-validation on the training prompts (``aios.routing.ridge``).

A prompt's score is the share of the labeled prompts it outranks (``aios.routing.percentile``),
so ``routing.difficulty_threshold`` *t* keeps about a share *t* of such traffic on the device.

Fitting and scoring need only numpy (plus onnxruntime when an embedder is used); the artifact is
a ``.npz`` of plain arrays and a JSON metadata string, loaded with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from aios.files import replaced_atomically
from aios.routing.encoder import Embedder, UseEncoder
from aios.routing.features import FEATURE_NAMES, extract_many
from aios.routing.labeled import LabeledSet, check_labels, load_labeled_csv, read_excluded_prompts
from aios.routing.percentile import PercentileScale
from aios.routing.quality import evaluate, random_baseline
from aios.routing.ridge import ridge_path, select_penalty
from aios.routing.wordbag import BUCKETS, WordBag

# The data, metric and encoder names live in their own modules; they are re-exported here
# because `aios.routing.difficulty` is where the CLI, bench and plugins have imported them.
__all__ = [
    "DifficultyRouter",
    "Embedder",
    "LabeledSet",
    "UseEncoder",
    "evaluate",
    "load_labeled_csv",
    "random_baseline",
    "read_excluded_prompts",
]

FORMAT_VERSION = 3
# Version 1 artifacts have no word bag; versions 1 and 2 squash raw outputs with a logistic
# instead of the percentile scale.
_READABLE_VERSIONS = (1, 2, 3)
TARGET = "cloud_gain"  # cloud_correct - device_correct
# Ridge penalties per training prompt, ascending, for standardized columns. Per-prompt labels
# are very noisy, so strong shrinkage usually wins (on GSM8K 15 held out better than 1.5 or
# 0.15; the heavy end is a stable correlation-weighted sum of the features); 15 is the choice
# when a set is too small to cross-validate.
_PENALTIES = np.array([0.1, 0.3, 1.0, 3.0, 10.0, 15.0, 30.0, 100.0])
_DEFAULT_PENALTY = 5
_MIN_PROMPTS = 10
_EMBED_DIMS = 32


def _standardize(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    # Constant columns (e.g. no multiple-choice prompts in a set) must not divide by zero.
    scale[scale < 1e-12] = 1.0
    return mean, scale


def _embed(embedder: Embedder, prompts: Sequence[str], batch: int = 64) -> np.ndarray:
    parts = [
        np.asarray(embedder(list(prompts[i : i + batch]))) for i in range(0, len(prompts), batch)
    ]
    return np.concatenate(parts).astype(np.float64)


class DifficultyRouter:
    """Scores prompts by how much sending them to the cloud is expected to help.

    ``score`` is in (0, 1) and higher means "route to the cloud first": the share of the
    training prompts whose output was lower (``percentile``). Artifacts written before format 3
    have no percentile scale and keep their logistic squash of the standardized output.
    """

    def __init__(
        self,
        *,
        feature_mean: np.ndarray,
        feature_scale: np.ndarray,
        coef: np.ndarray,
        intercept: float,
        score_center: float,
        score_scale: float,
        embed_mean: np.ndarray | None = None,
        embed_components: np.ndarray | None = None,
        word_bag: WordBag | None = None,
        percentile: PercentileScale | None = None,
        metadata: dict[str, Any] | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        self.metadata: dict[str, Any] = dict(metadata or {})
        self._percentile = percentile
        self._word_bag = word_bag
        self._uses_embeddings = embed_components is not None and embed_components.size > 0
        if self._uses_embeddings and embedder is None:
            embedder = UseEncoder()
        self._embedder = embedder if self._uses_embeddings else None
        self._embed_mean = embed_mean
        self._embed_components = embed_components
        # Fold standardization into the weights once so scoring is one dot product.
        self._feature_mean = feature_mean
        self._feature_scale = feature_scale
        self._coef = coef
        self._intercept = float(intercept)
        self._w = coef / feature_scale
        self._b = self._intercept - float(self._w @ feature_mean)
        self._center = float(score_center)
        self._scale = float(score_scale)

    @property
    def uses_embeddings(self) -> bool:
        return self._uses_embeddings

    @property
    def feature_names(self) -> list[str]:
        return list(self.metadata.get("feature_names", []))

    # -- fitting -------------------------------------------------------------------------------

    @classmethod
    def fit(
        cls,
        prompts: Sequence[str],
        device_correct: Sequence[bool] | np.ndarray,
        cloud_correct: Sequence[bool] | np.ndarray,
        *,
        seed: int = 0,
        embedder: Embedder | None = None,
    ) -> DifficultyRouter:
        """Fit on labeled prompts. Deterministic for a given ``seed``, which shuffles the
        cross-validation folds that choose the penalties."""
        d, c = check_labels(device_correct, cloud_correct)
        prompts = list(prompts)
        if len(prompts) != len(d):
            raise ValueError(f"{len(prompts)} prompts but {len(d)} labels")
        if len(prompts) < _MIN_PROMPTS:
            raise ValueError(f"need at least {_MIN_PROMPTS} labeled prompts, got {len(prompts)}")
        y = c.astype(np.float64) - d.astype(np.float64)
        names = list(FEATURE_NAMES)
        x = extract_many(prompts)
        embed_mean = embed_components = None
        if embedder is not None:
            emb = _embed(embedder, prompts)
            embed_mean = emb.mean(axis=0)
            # A low-rank projection: 512 raw dims overfit a few hundred labels.
            k = min(_EMBED_DIMS, emb.shape[1], len(prompts) - 1)
            _, _, vt = np.linalg.svd(emb - embed_mean, full_matrices=False)
            embed_components = vt[:k]
            x = np.hstack([x, (emb - embed_mean) @ embed_components.T])
            names += [f"embed_pc{i}" for i in range(k)]
        # Stacked on held-out predictions: in-sample ones would look far better than they are
        # and take weight from the other features.
        word_bag, word_sel, words = WordBag.fit(prompts, y, seed=seed)
        x = np.hstack([x, words[:, None]])
        names.append("word_bag")
        mean, scale = _standardize(x)
        xs = (x - mean) / scale
        n = len(prompts)
        sel = select_penalty(xs, y, _PENALTIES * n, default=_DEFAULT_PENALTY, seed=seed)
        coef, intercept = ridge_path(xs, y, np.array([sel.penalty]))
        coef, intercept = coef[:, 0], float(intercept[0])
        raw = xs @ coef + intercept
        metadata = {
            "format_version": FORMAT_VERSION,
            "model": "ridge",
            "target": TARGET,
            "target_doc": "cloud_correct - device_correct; higher score = route to cloud first",
            "score": "percentile",
            "score_doc": "share of training prompts scored lower; threshold t keeps ~t on device",
            "feature_names": names,
            "n_train": n,
            "train_device_accuracy": float(d.mean()),
            "train_cloud_accuracy": float(c.mean()),
            "alpha": sel.penalty,
            # Held-out correlation per candidate penalty; empty when the set was too small.
            "alpha_grid": [float(a) for a in _PENALTIES * n],
            "alpha_cv_corr": sel.cv_corr,
            "word_bag": {
                "buckets": BUCKETS,
                "alpha": word_sel.penalty,
                # Held-out correlation of the words alone with the gain, at the chosen penalty.
                "cv_corr": word_sel.cv_corr[word_sel.index] if word_sel.cv_corr else None,
            },
            "seed": seed,
            "embedder": getattr(embedder, "name", type(embedder).__name__) if embedder else None,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        return cls(
            feature_mean=mean,
            feature_scale=scale,
            coef=coef,
            intercept=intercept,
            score_center=float(raw.mean()),
            score_scale=float(raw.std()) or 1.0,
            embed_mean=embed_mean,
            embed_components=embed_components,
            word_bag=word_bag,
            percentile=PercentileScale.fit(raw),
            metadata=metadata,
            embedder=embedder,
        )

    # -- scoring -------------------------------------------------------------------------------

    def _squash(self, raw: np.ndarray) -> np.ndarray:
        z = np.clip((raw - self._center) / self._scale, -30.0, 30.0)
        logistic = 1.0 / (1.0 + np.exp(-z))
        if self._percentile is not None:
            return self._percentile(raw, logistic)
        return logistic

    def _embed_block(self, prompts: list[str]) -> np.ndarray:
        assert self._embedder is not None and self._embed_components is not None
        emb = _embed(self._embedder, prompts)
        return (emb - self._embed_mean) @ self._embed_components.T

    def _columns(self, prompts: list[str]) -> np.ndarray:
        x = extract_many(prompts)
        if self._uses_embeddings:
            x = np.hstack([x, self._embed_block(prompts)])
        if self._word_bag is not None:
            x = np.hstack([x, self._word_bag.predict_many(prompts)[:, None]])
        return x

    def score(self, prompt: str) -> float:
        """Difficulty of one prompt in (0, 1); higher = send to the cloud."""
        return float(self._squash(np.asarray(self._columns([prompt])[0] @ self._w + self._b)))

    def score_many(self, prompts: Sequence[str]) -> np.ndarray:
        prompts = list(prompts)
        if not prompts:
            return np.zeros(0)
        return self._squash(self._columns(prompts) @ self._w + self._b)

    # -- persistence ---------------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        """Write a ``.npz`` of plain arrays; no pickles, so loading runs no code."""
        empty = np.zeros((0,))
        # Through a file object: np.savez would append ".npz" to a name like "router.bin".
        # Atomically, because a running service reloads the artifact its config names.
        with replaced_atomically(path) as tmp, open(tmp, "wb") as f:
            self._savez(f, empty)

    def _savez(self, f: Any, empty: np.ndarray) -> None:
        np.savez(
            f,
            feature_mean=self._feature_mean,
            feature_scale=self._feature_scale,
            coef=self._coef,
            intercept=np.array(self._intercept),
            score_center=np.array(self._center),
            score_scale=np.array(self._scale),
            embed_mean=self._embed_mean if self._embed_mean is not None else empty,
            embed_components=(
                self._embed_components if self._embed_components is not None else empty
            ),
            word_coef=self._word_bag.coef if self._word_bag is not None else empty,
            word_intercept=np.array(self._word_bag.intercept if self._word_bag else 0.0),
            score_quantiles=self._percentile.quantiles if self._percentile is not None else empty,
            metadata=np.array(json.dumps(self.metadata)),
        )

    @classmethod
    def load(cls, path: str | Path, *, embedder: Embedder | None = None) -> DifficultyRouter:
        """Raise ``OSError`` when the file cannot be read, ``ValueError`` when it is no artifact."""
        with open(path, "rb") as f:
            magic = f.read(4)
        # An artifact is an .npz (a zip); anything else would reach numpy's pickle path, whose
        # error talks about allow_pickle instead of saying what the file is not.
        if magic != b"PK\x03\x04":
            raise ValueError("not a router artifact (write one with `aios router fit`)")
        try:
            return cls._from_npz(path, embedder)
        except (KeyError, TypeError, EOFError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
            raise ValueError(f"not a router artifact ({type(exc).__name__}: {exc})") from None

    @classmethod
    def _from_npz(cls, path: str | Path, embedder: Embedder | None) -> DifficultyRouter:
        with np.load(path, allow_pickle=False) as z:
            metadata = json.loads(str(z["metadata"]))
            version = metadata.get("format_version")
            if version not in _READABLE_VERSIONS:
                raise ValueError(f"unsupported router format version {version!r}")
            comps = z["embed_components"]
            words = z["word_coef"] if "word_coef" in z.files else np.zeros((0,))
            word_bag = WordBag(words, float(z["word_intercept"])) if words.size else None
            percentile = None
            if version >= 3:
                percentile = PercentileScale(z["score_quantiles"], int(metadata["n_train"]))
            return cls(
                feature_mean=z["feature_mean"],
                feature_scale=z["feature_scale"],
                coef=z["coef"],
                intercept=float(z["intercept"]),
                score_center=float(z["score_center"]),
                score_scale=float(z["score_scale"]),
                embed_mean=z["embed_mean"] if comps.size else None,
                embed_components=comps if comps.size else None,
                word_bag=word_bag,
                percentile=percentile,
                metadata=metadata,
                embedder=embedder,
            )
