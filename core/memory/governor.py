"""The memory governor: a model loads only if it fits; idle models make room, pinned ones never.

Budget = the profile's RAM − OS reserve − keep-alive reserve, or what the device really has
free (MemAvailable plus what our own models already hold, less the ``min_free_mb`` the system
always keeps), whichever is lower. A model that cannot fit even after evicting every idle,
unpinned model (least recently used first) is refused with a typed error, so the router can send
the request elsewhere. When other apps take memory and the budget falls below what aios holds,
``shed`` gives memory back by unloading idle models, before the system has to kill anything.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from aios.errors import AIOSError

log = structlog.get_logger("aios.memory")


class MemoryBudgetError(AIOSError):
    """A model does not fit the memory budget, even after evicting idle models.

    ``transient`` is True when it would fit once models now in use finish: worth waiting for.
    """

    code = "memory_budget"

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


def meminfo_available_mb(path: str = "/proc/meminfo") -> float | None:
    """MemAvailable from the kernel, in MiB; None where there is no /proc (not Linux)."""
    try:
        with open(path, encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


@dataclass
class Resident:
    key: tuple[str, str]
    footprint_mb: float
    pinned: bool = False
    last_used: float = field(default_factory=time.monotonic)
    keep_alive_s: float | None = None
    busy: Callable[[], bool] = lambda: False


class MemoryGovernor:
    def __init__(
        self,
        profile_budget_mb: float,
        available_mb: Callable[[], float | None] = meminfo_available_mb,
        clock: Callable[[], float] = time.monotonic,
        min_free_mb: float = 0.0,
    ) -> None:
        self.profile_budget_mb = profile_budget_mb
        self.min_free_mb = min_free_mb
        self._available = available_mb
        self._clock = clock
        self._lock = threading.Lock()
        self.resident: dict[tuple[str, str], Resident] = {}
        self.evictions = 0
        self.shed_count = 0

    def used_mb(self) -> float:
        return sum(r.footprint_mb for r in self.resident.values())

    def budget_mb(self) -> float:
        live = self._available()
        if live is None:
            return self.profile_budget_mb
        # What our own models hold is not "available" to the kernel, but it is ours to reuse.
        return max(0.0, min(self.profile_budget_mb, live + self.used_mb() - self.min_free_mb))

    def touch(self, key: tuple[str, str]) -> None:
        with self._lock:
            if key in self.resident:
                self.resident[key].last_used = self._clock()

    def expired(self) -> list[tuple[str, str]]:
        """Idle models whose keep-alive has run out (the caller unloads them)."""
        now = self._clock()
        with self._lock:
            return [
                r.key
                for r in self.resident.values()
                if r.keep_alive_s is not None
                and not r.pinned
                and not r.busy()
                and now - r.last_used > r.keep_alive_s
            ]

    def admit(self, resident: Resident, evict: Callable[[tuple[str, str]], None]) -> None:
        """Make room for ``resident`` (evicting LRU idle models through ``evict``), then add it."""
        with self._lock:
            budget = self.budget_mb()
            need = resident.footprint_mb
            if need > budget:
                raise MemoryBudgetError(
                    f"model '{resident.key[0]}' needs {need:.0f} MB; the memory budget is "
                    f"{budget:.0f} MB"
                )
            victims: list[Resident] = []
            free = budget - self.used_mb()
            for r in self._idle_lru():
                if free >= need:
                    break
                victims.append(r)
                free += r.footprint_mb
            if free < need:
                held = ", ".join(
                    f"{r.key[0]} ({r.footprint_mb:.0f} MB, {'pinned' if r.pinned else 'in use'})"
                    for r in self.resident.values()
                    if r not in victims
                )
                in_use = sum(
                    r.footprint_mb
                    for r in self.resident.values()
                    if r not in victims and not r.pinned
                )
                raise MemoryBudgetError(
                    f"model '{resident.key[0]}' needs {need:.0f} MB but only {free:.0f} MB of "
                    f"the {budget:.0f} MB budget can be freed; held by {held or 'nothing'}",
                    transient=free + in_use >= need,
                )
            for r in victims:
                del self.resident[r.key]
                self.evictions += 1
            resident.last_used = self._clock()
            self.resident[resident.key] = resident
        for r in victims:
            log.info(
                "model.evicted",
                model=r.key[0],
                freed_mb=round(r.footprint_mb),
                for_model=resident.key[0],
            )
            evict(r.key)

    def shed(self, evict: Callable[[tuple[str, str]], None]) -> list[tuple[str, str]]:
        """Under memory pressure, unload idle models (LRU) until what aios holds fits again."""
        with self._lock:
            budget = self.budget_mb()
            used = self.used_mb()
            if used <= budget:
                return []
            victims = []
            for r in self._idle_lru():
                if used <= budget:
                    break
                victims.append(r)
                used -= r.footprint_mb
                del self.resident[r.key]
            self.shed_count += len(victims)
        for r in victims:
            log.info(
                "model.shed",
                model=r.key[0],
                freed_mb=round(r.footprint_mb),
                budget_mb=round(budget),
                why="memory pressure: the device's free memory fell below what aios holds",
            )
            evict(r.key)
        return [r.key for r in victims]

    def _idle_lru(self) -> list[Resident]:
        """Models that may be unloaded now (not pinned, not in use), least recently used first."""
        idle = (r for r in self.resident.values() if not r.pinned and not r.busy())
        return sorted(idle, key=lambda r: r.last_used)

    def release(self, key: tuple[str, str]) -> None:
        with self._lock:
            self.resident.pop(key, None)

    def pin(self, model_id: str, pinned: bool) -> bool:
        with self._lock:
            hits = [r for r in self.resident.values() if r.key[0] == model_id]
            for r in hits:
                r.pinned = pinned
            return bool(hits)
