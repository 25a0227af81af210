"""Helpers the benchmark scripts share (run them from the repository root)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any


def err(*parts: Any) -> None:
    """Progress and tables go to stderr, so ``--json`` leaves exactly one object on stdout."""
    print(*parts, file=sys.stderr)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def raw_llama(orch: Any, model_id: str) -> tuple[Any, Path]:
    """A bare ``llama_cpp.Llama`` on the same file and settings aios loads ``model_id`` with."""
    import aios.sources
    from aios.backends.default_llama_cpp import _import_llama_cpp

    spec = orch.config.model(model_id)
    path: Path = aios.sources.resolve(spec, orch.base_dir, orch.models.cache_dir)
    llama_cpp = _import_llama_cpp()  # routes llama.cpp's native log into structlog (debug)
    llm = llama_cpp.Llama(
        model_path=str(path),
        n_ctx=spec.context_length,
        n_threads=os.cpu_count(),
        n_batch=512,
        seed=0,
        verbose=False,
    )
    return llm, path
