"""A circuit breaker per cloud endpoint: stop calling a failing service, probe it again later.

closed -> (N consecutive failures) -> open -> (cooldown elapsed) -> half-open: one trial call;
success closes it, failure re-opens it for another cooldown.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

State = Literal["closed", "open", "half-open"]


@dataclass(frozen=True)
class BreakerStatus:
    state: State
    consecutive_failures: int
    last_error: str | None
    retry_in_s: float  # 0 unless open


class CircuitBreaker:
    def __init__(
        self,
        failures: int,
        cooldown_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failures = failures
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._lock = threading.Lock()
        self._consecutive = 0
        self._opened_at: float | None = None
        self._trial_running = False
        self._last_error: str | None = None

    def status(self) -> BreakerStatus:
        with self._lock:
            return self._status()

    def _status(self) -> BreakerStatus:
        if self._opened_at is None:
            return BreakerStatus("closed", self._consecutive, self._last_error, 0.0)
        left = self._opened_at + self.cooldown_s - self._clock()
        if left > 0:
            return BreakerStatus("open", self._consecutive, self._last_error, left)
        return BreakerStatus("half-open", self._consecutive, self._last_error, 0.0)

    def allow(self) -> bool:
        """Whether a call may go out now (in half-open state, only one trial at a time)."""
        with self._lock:
            state = self._status().state
            if state == "closed":
                return True
            if state == "half-open" and not self._trial_running:
                self._trial_running = True
                return True
            return False

    def success(self) -> None:
        with self._lock:
            self._consecutive = 0
            self._opened_at = None
            self._trial_running = False
            self._last_error = None

    def failure(self, error: str) -> None:
        with self._lock:
            self._consecutive += 1
            self._last_error = error
            if self._trial_running or self._consecutive >= self.failures:
                self._opened_at = self._clock()
            self._trial_running = False
