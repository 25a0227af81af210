"""Loaded models, kept and reused across requests; each is loaded once even under concurrency."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from aios import sources
from aios.backend import Backend, CancelSignal, LoadedModel
from aios.config.schema import ModelSpec, SchedulingSettings
from aios.errors import CancelledError, ModelError
from aios.memory.governor import MemoryBudgetError, MemoryGovernor, Resident
from aios.scheduler import Gate
from aios.types import Tier

log = structlog.get_logger("aios.models")

# How long closing waits for a model's running calls. The service cancels its calls first and
# they stop within a token or a prefill slice; what still runs after this is an abandoned stream.
CLOSE_WAIT_S = 30.0

# How often a load blocked by models in use re-checks the budget. A model frees its memory when
# its last call ends, which takes at least a token step (tens of ms), so polling is cheap here.
_MEMORY_POLL_S = 0.05


@dataclass(frozen=True)
class Loaded:
    handle: LoadedModel
    gate: Gate
    load_ms: float = 0.0  # time this call spent loading the model (0 when it was resident)
    wait_ms: float = 0.0  # time it waited for models in use to free memory first


class ModelCache:
    def __init__(
        self,
        base_dir: Path,
        cache_dir: Path,
        governor: MemoryGovernor | None = None,
        scheduling: SchedulingSettings | None = None,
        builders: Mapping[str, Any] | None = None,
        delivery: Any = None,
    ) -> None:
        self.base_dir = base_dir
        self.delivery = delivery  # aios.delivery.ModelDelivery: url sources, auto_download
        self.cache_dir = cache_dir
        self.builders = builders  # model builders, to say what a missing build needs
        self.governor = governor
        self.scheduling = scheduling or SchedulingSettings()
        self._loaded: dict[tuple[str, str], LoadedModel] = {}
        self._gates: dict[tuple[str, str], Gate] = {}
        self.loads = 0
        self._key_locks: dict[tuple[str, str], threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, spec: ModelSpec, backend: Backend, cancel: CancelSignal | None = None) -> Loaded:
        """The model loaded (or reused), with its gate and what loading it cost this call."""
        key = (spec.id, backend.name)
        self._sweep()
        with self._lock:
            if key in self._loaded:
                if self.governor:
                    self.governor.touch(key)
                return Loaded(self._loaded[key], self._gates[key])
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        self._lock_or_cancel(key_lock, spec.id, cancel)
        try:
            return self._load(key, spec, backend, cancel)
        finally:
            key_lock.release()

    def _lock_or_cancel(
        self, key_lock: threading.Lock, model_id: str, cancel: CancelSignal | None
    ) -> None:
        # Another request may be loading (or downloading) this model for minutes; a cancelled
        # request stops waiting for it rather than holding its caller.
        while not key_lock.acquire(timeout=_MEMORY_POLL_S):
            if cancel is not None and cancel.is_set():
                raise CancelledError(
                    f"request was cancelled while model '{model_id}' was being loaded"
                )

    def _load(
        self, key: tuple[str, str], spec: ModelSpec, backend: Backend, cancel: CancelSignal | None
    ) -> Loaded:
        with self._lock:
            if key in self._loaded:
                return Loaded(self._loaded[key], self._gates[key])
        t0 = time.perf_counter()
        path = (
            sources.resolve(
                spec, self.base_dir, self.cache_dir, self.builders, self.delivery, cancel
            )
            if spec.tier is Tier.device
            else None
        )
        gate = Gate(
            spec.id,
            capacity=1,  # set from the loaded handle below
            max_queue=spec.max_queue,
            aging_s=self.scheduling.background_aging_s,
        )
        wait_ms = 0.0
        if self.governor and path is not None:
            # Admit before loading: the memory must be there before llama.cpp asks for it.
            try:
                est = backend.footprint_mb(spec, path)
            except ModelError as exc:
                raise ModelError(f"model '{spec.id}': {exc}") from None
            resident = Resident(
                key,
                est if est is not None else float(spec.memory_mb),
                keep_alive_s=spec.keep_alive_s,
                busy=gate.busy,
            )
            wait_ms = self._admit(resident, cancel)
        try:
            handle = backend.load(spec, path)
        except BaseException:
            if self.governor:
                self.governor.release(key)
            raise
        gate.capacity = min(spec.max_concurrency or handle.parallel, handle.parallel)
        load_ms = (time.perf_counter() - t0) * 1000 - wait_ms
        with self._lock:
            self._loaded[key] = handle
            self._gates[key] = gate
            self.loads += 1
        log.info(
            "model.loaded",
            model=spec.id,
            backend=backend.name,
            load_ms=round(load_ms, 1),
            waited_for_memory_ms=round(wait_ms, 1),
            concurrency=gate.capacity,
        )
        return Loaded(handle, gate, load_ms, wait_ms)

    def _admit(self, resident: Resident, cancel: CancelSignal | None) -> float:
        """Admit ``resident``; while only models in use stand in the way, wait for them to
        finish (up to the queue timeout) rather than refuse. Returns the ms waited."""
        assert self.governor is not None
        t0 = time.perf_counter()
        deadline = t0 + self.scheduling.queue_timeout_s
        while True:
            try:
                self.governor.admit(resident, evict=self._evict)
                return (time.perf_counter() - t0) * 1000
            except MemoryBudgetError as exc:
                if not exc.transient or time.perf_counter() >= deadline:
                    raise
            if cancel is not None and cancel.is_set():
                raise CancelledError(
                    f"request was cancelled while model '{resident.key[0]}' waited for memory"
                )
            time.sleep(_MEMORY_POLL_S)

    def _evict(self, key: tuple[str, str]) -> None:
        with self._lock:
            handle = self._loaded.pop(key, None)
            gate = self._gates.pop(key, None)
        self._close(handle, gate)

    @staticmethod
    def _close(
        handle: LoadedModel | None, gate: Gate | None, timeout_s: float | None = None
    ) -> None:
        # Queued calls go away to reload; never close mid-generation.
        if gate is not None and not gate.retire(timeout_s):
            # A call still holds the model: a stream its caller stopped reading without closing
            # it. Freeing native memory under it could crash the process if it ever resumed,
            # so the model is left to the process's exit rather than hang the shutdown.
            log.warning(
                "model.left_open",
                model=handle.spec.id if handle is not None else None,
                waited_s=timeout_s,
                reason="calls still running (an unfinished stream?)",
            )
            return
        if handle is not None:
            handle.close()

    def _sweep(self) -> None:
        """Unload models whose keep-alive ran out, and idle ones under memory pressure."""
        if self.governor:
            for key in self.governor.expired():
                self.governor.release(key)
                self._evict(key)
                log.info("model.expired", model=key[0])
            self.governor.shed(self._evict)

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

    def close(self, timeout_s: float = CLOSE_WAIT_S) -> None:
        """Close every model once its running calls end, waiting at most ``timeout_s`` each."""
        with self._lock:
            taken = [(h, self._gates.pop(k)) for k, h in self._loaded.items()]
            self._loaded.clear()
        for handle, gate in taken:
            self._close(handle, gate, timeout_s)
