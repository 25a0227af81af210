"""Device-state traces: a timeline that a simulated provider replays (tests, ``aios simulate``).

A trace is JSON lines (one point per line; blank lines and lines starting with ``#`` are
skipped), or, for a ``.json`` file, one JSON array of points (or an object with ``points``).
Each point has ``t`` (seconds, increasing) and any of ``mem_available_mb``, ``temp_c``,
``battery_pct``, ``charging``, ``online``. A value holds until a later point changes it; null
sets it back to unknown.
"""

from __future__ import annotations

import bisect
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aios.config.loader import validation_problems
from aios.errors import AIOSError
from aios.files import read_text_file


class TraceError(AIOSError):
    """A trace file is missing or invalid; the message names the file and the line or point."""

    code = "trace_invalid"
    exit_code = 2


class TracePoint(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    t: float = Field(ge=0, le=10_000_000, description="Seconds from the start of the trace.")
    mem_available_mb: float | None = Field(
        default=None, ge=0, le=16_777_216, description="MemAvailable, MiB."
    )
    temp_c: float | None = Field(default=None, ge=-40, le=150, description="Temperature, °C.")
    battery_pct: float | None = Field(default=None, ge=0, le=100, description="Charge, %.")
    charging: bool | None = Field(default=None, description="Plugged in.")
    online: bool | None = Field(default=None, description="The cloud is reachable.")


FIELDS = tuple(f for f in TracePoint.model_fields if f != "t")


@dataclass(frozen=True)
class Trace:
    path: Path
    times: tuple[float, ...]
    states: tuple[dict[str, Any], ...]  # the held values at each point

    def at(self, t: float) -> dict[str, Any]:
        """The readings in force at ``t`` (before the first point: all unknown)."""
        i = bisect.bisect_right(self.times, t) - 1
        return dict(self.states[i]) if i >= 0 else {}

    @property
    def duration_s(self) -> float:
        return self.times[-1]


def _entries(path: Path, text: str) -> list[tuple[str, Any]]:
    """(where, raw point) pairs, where = "file:line" or "file: points[i]"."""
    if path.suffix.lower() == ".json":
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TraceError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
        if isinstance(doc, dict) and "points" in doc:
            doc = doc["points"]
        if not isinstance(doc, list):
            raise TraceError(f'{path}: expected a JSON array of points or {{"points": [...]}}')
        return [(f"{path}: points[{i}]", item) for i, item in enumerate(doc)]
    out = []
    for n, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            out.append((f"{path}:{n}", json.loads(line)))
        except json.JSONDecodeError as exc:
            raise TraceError(f"{path}:{n}: not valid JSON ({exc.msg})") from None
    return out


def load_trace(path: str | os.PathLike[str]) -> Trace:
    """Parse and check a trace file; every problem is a ``TraceError`` naming file and line."""
    p = Path(path)
    try:
        text = read_text_file(p)
    except ValueError as exc:
        raise TraceError(f"{p}: {exc}") from None
    times: list[float] = []
    states: list[dict[str, Any]] = []
    held: dict[str, Any] = {}
    for where, raw in _entries(p, text):
        if not isinstance(raw, dict):
            raise TraceError(f"{where}: a point must be a JSON object, got {type(raw).__name__}")
        try:
            point = TracePoint.model_validate(raw)
        except ValidationError as exc:
            raise TraceError(f"{where}: {validation_problems(exc)[0]}") from None
        if times and point.t <= times[-1]:
            raise TraceError(f"{where}: t: {point.t:g} must be after the previous {times[-1]:g}")
        held.update({k: getattr(point, k) for k in point.model_fields_set if k != "t"})
        times.append(point.t)
        states.append(dict(held))
    if not times:
        raise TraceError(f"{p}: the trace has no points")
    return Trace(path=p, times=tuple(times), states=tuple(states))


class SimulatedProvider:
    """Replays a trace: at the time ``seek`` set, else the seconds since its first read."""

    name = "trace"

    def __init__(
        self, trace: Trace, *, speed: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.trace = trace
        self.speed = speed
        self._clock = clock
        self._start: float | None = None
        self._fixed: float | None = None

    def seek(self, t: float) -> None:
        """Hold the replay at ``t`` seconds until the next ``seek``."""
        self._fixed = t

    def now(self) -> float:
        if self._fixed is not None:
            return self._fixed
        if self._start is None:
            self._start = self._clock()
        return (self._clock() - self._start) * self.speed

    def read(self) -> dict[str, Any]:
        t = self.now()
        readings = self.trace.at(t)
        if readings.get("online") is False:
            readings["network"] = f"offline in the trace at {t:g} s"
        return readings
