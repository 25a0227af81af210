"""What the service runs on: the current orchestrator and apps, swapped whole on reload.

A request takes the generation current when it arrives and keeps it to the end, so a reload
(SIGHUP) serves new requests on the new orchestrator while in-flight ones finish on the old
one, which is closed when its last request ends. Every in-flight request's cancel event is
known here, so a shutdown can cancel what outlives its grace period.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from aios.config.loader import load_config
from aios.config.schema import OEMConfig
from aios.orchestrator import Orchestrator
from aios.service.auth import AppRegistry
from aios.service.errors import ShuttingDownError

log = structlog.get_logger("aios.service")


@dataclass
class Generation:
    orchestrator: Orchestrator
    apps: AppRegistry
    number: int = 1
    inflight: int = 0
    retired: bool = False

    @property
    def config(self) -> OEMConfig:
        return self.orchestrator.config


@dataclass
class Runtime:
    current: Generation
    started: float = field(default_factory=time.time)
    draining: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _cancels: set[threading.Event] = field(default_factory=set)

    @classmethod
    def build(cls, orchestrator: Orchestrator) -> Runtime:
        return cls(
            Generation(orchestrator, AppRegistry.load(orchestrator.config, orchestrator.base_dir))
        )

    @contextmanager
    def request(self) -> Iterator[tuple[Generation, threading.Event]]:
        """Hold the current generation and a cancel event for one request."""
        cancel = threading.Event()
        with self._lock:
            if self.draining:
                raise ShuttingDownError("the service is shutting down", retry_after=5)
            gen = self.current
            gen.inflight += 1
            self._cancels.add(cancel)
        try:
            yield gen, cancel
        finally:
            with self._lock:
                self._cancels.discard(cancel)
                gen.inflight -= 1
                close = gen.retired and gen.inflight == 0
            if close:
                self._close(gen)

    def inflight(self) -> int:
        with self._lock:
            return len(self._cancels)

    def cancel_all(self) -> int:
        with self._lock:
            events = list(self._cancels)
        for ev in events:
            ev.set()
        return len(events)

    def swap(self, orchestrator: Orchestrator, apps: AppRegistry) -> Generation:
        with self._lock:
            old = self.current
            self.current = Generation(orchestrator, apps, number=old.number + 1)
            old.retired = True
            close = old.inflight == 0
        if close:
            self._close(old)
        return self.current

    def reload(self, path: str | Path | None) -> bool:
        """Load, validate and swap in a config; a bad one is refused and logged whole."""
        from aios.errors import ConfigError

        try:
            config, resolved = load_config(path)
            orch = Orchestrator(config, config_path=resolved)
            try:
                apps = AppRegistry.load(config, orch.base_dir)
            except BaseException:
                orch.close()
                raise
        except ConfigError as exc:
            log.error("service.reload_refused", source=exc.source, problems=exc.problems)
            return False
        except Exception as exc:  # anything else: keep serving on the old config
            log.error("service.reload_refused", source=str(path), problems=[str(exc)])
            return False
        gen = self.swap(orch, apps)
        log.info(
            "service.reloaded", config=str(resolved), generation=gen.number, apps=len(apps.apps)
        )
        return True

    def close(self) -> None:
        with self._lock:
            gen = self.current
            gen.retired = True
        self._close(gen)

    @staticmethod
    def _close(gen: Generation) -> None:
        try:
            gen.orchestrator.close()
        except Exception:
            log.warning("service.close_failed", generation=gen.number, exc_info=True)
        else:
            log.info("service.generation_closed", generation=gen.number)
