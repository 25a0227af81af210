"""Loaded models, kept and reused across requests; each is loaded once even under concurrency."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import structlog

from aios import sources
from aios.backend import Backend, LoadedModel
from aios.config.schema import ModelSpec
from aios.errors import ModelError
from aios.memory.governor import MemoryGovernor, Resident
from aios.types import Tier

log = structlog.get_logger("aios.models")


class ModelCache:
    def __init__(
        self, base_dir: Path, cache_dir: Path, governor: MemoryGovernor | None = None
    ) -> None:
        self.base_dir = base_dir
        self.cache_dir = cache_dir
        self.governor = governor
        self._loaded: dict[tuple[str, str], LoadedModel] = {}
        self._key_locks: dict[tuple[str, str], threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, spec: ModelSpec, backend: Backend) -> tuple[LoadedModel, float]:
        """The loaded model and the milliseconds this call spent loading it (0 when cached)."""
        key = (spec.id, backend.name)
        self._expire()
        with self._lock:
            if key in self._loaded:
                if self.governor:
                    self.governor.touch(key)
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
            holder: list[LoadedModel] = []
            if self.governor and path is not None:
                # Admit before loading: the memory must be there before llama.cpp asks for it.
                try:
                    est = backend.footprint_mb(spec, path)
                except ModelError as exc:
                    raise ModelError(f"model '{spec.id}': {exc}") from None
                self.governor.admit(
                    Resident(
                        key,
                        est if est is not None else float(spec.memory_mb),
                        keep_alive_s=spec.keep_alive_s,
                        busy=lambda: bool(holder) and holder[0].lock.locked(),
                    ),
                    evict=self._evict,
                )
            try:
                handle = backend.load(spec, path)
            except BaseException:
                if self.governor:
                    self.governor.release(key)
                raise
            holder.append(handle)
            load_ms = (time.perf_counter() - t0) * 1000
            with self._lock:
                self._loaded[key] = handle
            log.info("model.loaded", model=spec.id, backend=backend.name, load_ms=round(load_ms, 1))
            return handle, load_ms

    def _evict(self, key: tuple[str, str]) -> None:
        with self._lock:
            handle = self._loaded.pop(key, None)
        if handle is not None:
            with handle.lock:  # never close a model mid-generation
                handle.close()

    def _expire(self) -> None:
        if self.governor:
            for key in self.governor.expired():
                self.governor.release(key)
                self._evict(key)
                log.info("model.expired", model=key[0])

    def pin(self, model_id: str, pinned: bool = True) -> bool:
        """Keep a loaded model resident (never evicted) or release the pin."""
        return bool(self.governor and self.governor.pin(model_id, pinned))

    def loaded(self) -> list[LoadedModel]:
        with self._lock:
            return list(self._loaded.values())

    def unload(self, model_id: str) -> bool:
        with self._lock:
            keys = [k for k in self._loaded if k[0] == model_id]
            handles = [self._loaded.pop(k) for k in keys]
        for k in keys:
            if self.governor:
                self.governor.release(k)
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
