"""Loaded models, kept and reused across requests; each is loaded once even under concurrency."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import structlog

from aios import sources
from aios.backend import Backend, LoadedModel
from aios.config.schema import ModelSpec
from aios.types import Tier

log = structlog.get_logger("aios.models")


class ModelCache:
    def __init__(self, base_dir: Path, cache_dir: Path) -> None:
        self.base_dir = base_dir
        self.cache_dir = cache_dir
        self._loaded: dict[tuple[str, str], LoadedModel] = {}
        self._key_locks: dict[tuple[str, str], threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, spec: ModelSpec, backend: Backend) -> tuple[LoadedModel, float]:
        """The loaded model and the milliseconds this call spent loading it (0 when cached)."""
        key = (spec.id, backend.name)
        with self._lock:
            if key in self._loaded:
                return self._loaded[key], 0.0
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._loaded:
                    return self._loaded[key], 0.0
            t0 = time.perf_counter()
            path = (
                sources.resolve(spec, self.base_dir, self.cache_dir)
                if spec.tier is Tier.device
                else None
            )
            handle = backend.load(spec, path)
            load_ms = (time.perf_counter() - t0) * 1000
            with self._lock:
                self._loaded[key] = handle
            log.info("model.loaded", model=spec.id, backend=backend.name, load_ms=round(load_ms, 1))
            return handle, load_ms

    def loaded(self) -> list[LoadedModel]:
        with self._lock:
            return list(self._loaded.values())

    def unload(self, model_id: str) -> bool:
        with self._lock:
            keys = [k for k in self._loaded if k[0] == model_id]
            handles = [self._loaded.pop(k) for k in keys]
        for h in handles:
            with h.lock:
                h.close()
        return bool(handles)

    def close(self) -> None:
        with self._lock:
            handles = list(self._loaded.values())
            self._loaded.clear()
        for h in handles:
            h.close()
