"""Loaded models, kept and reused across requests; each is loaded once even under concurrency."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import structlog

from aios import sources
from aios.backend import Backend, LoadedModel
from aios.config.schema import ModelSpec, SchedulingSettings
from aios.errors import ModelError
from aios.memory.governor import MemoryGovernor, Resident
from aios.scheduler import Gate
from aios.types import Tier

log = structlog.get_logger("aios.models")


class ModelCache:
    def __init__(
        self,
        base_dir: Path,
        cache_dir: Path,
        governor: MemoryGovernor | None = None,
        scheduling: SchedulingSettings | None = None,
    ) -> None:
        self.base_dir = base_dir
        self.cache_dir = cache_dir
        self.governor = governor
        self.scheduling = scheduling or SchedulingSettings()
        self._loaded: dict[tuple[str, str], LoadedModel] = {}
        self._gates: dict[tuple[str, str], Gate] = {}
        self._key_locks: dict[tuple[str, str], threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, spec: ModelSpec, backend: Backend) -> tuple[LoadedModel, Gate, float]:
        """The loaded model, its gate, and the milliseconds this call spent loading it."""
        key = (spec.id, backend.name)
        self._expire()
        with self._lock:
            if key in self._loaded:
                if self.governor:
                    self.governor.touch(key)
                return self._loaded[key], self._gates[key], 0.0
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._loaded:
                    return self._loaded[key], self._gates[key], 0.0
            t0 = time.perf_counter()
            path = (
                sources.resolve(spec, self.base_dir, self.cache_dir)
                if spec.tier is Tier.device
                else None
            )
            gate = Gate(
                spec.id,
                capacity=1,  # set from the loaded handle below
                max_queue=spec.max_queue,
                aging_s=self.scheduling.background_aging_s,
            )
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
                        busy=gate.busy,
                    ),
                    evict=self._evict,
                )
            try:
                handle = backend.load(spec, path)
            except BaseException:
                if self.governor:
                    self.governor.release(key)
                raise
            gate.capacity = min(spec.max_concurrency or handle.parallel, handle.parallel)
            load_ms = (time.perf_counter() - t0) * 1000
            with self._lock:
                self._loaded[key] = handle
                self._gates[key] = gate
            log.info(
                "model.loaded",
                model=spec.id,
                backend=backend.name,
                load_ms=round(load_ms, 1),
                concurrency=gate.capacity,
            )
            return handle, gate, load_ms

    def _evict(self, key: tuple[str, str]) -> None:
        with self._lock:
            handle = self._loaded.pop(key, None)
            gate = self._gates.pop(key, None)
        self._close(handle, gate)

    @staticmethod
    def _close(handle: LoadedModel | None, gate: Gate | None) -> None:
        if gate is not None:
            gate.retire()  # queued calls go away to reload; never close mid-generation
        if handle is not None:
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

    def loaded(self) -> list[tuple[LoadedModel, Gate]]:
        with self._lock:
            return [(h, self._gates[k]) for k, h in self._loaded.items()]

    def unload(self, model_id: str) -> bool:
        """Unload every instance of ``model_id``, after its running calls finish."""
        with self._lock:
            keys = [k for k in self._loaded if k[0] == model_id]
            taken = [(self._loaded.pop(k), self._gates.pop(k)) for k in keys]
        for handle, gate in taken:
            self._close(handle, gate)
        for k in keys:
            if self.governor:
                self.governor.release(k)
        return bool(taken)

    def close(self) -> None:
        with self._lock:
            taken = [(h, self._gates.pop(k)) for k, h in self._loaded.items()]
            self._loaded.clear()
        for handle, gate in taken:
            self._close(handle, gate)
