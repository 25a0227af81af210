"""Per-app quotas: a token bucket of requests per minute and a limit on concurrent calls."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aios.config.schema import AppSpec
from aios.service.errors import RateLimitedError


@dataclass
class TokenBucket:
    capacity: float
    per_second: float
    clock: Callable[[], float] = time.monotonic
    tokens: float = -1.0
    stamp: float = field(default=0.0)

    def __post_init__(self) -> None:
        self.tokens = self.capacity
        self.stamp = self.clock()

    def take(self) -> float:
        """Take one token; 0.0 when granted, else the seconds until one is there."""
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.per_second)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.per_second


class Quotas:
    """Admission of an app's call: rate first, then concurrency; ``release`` when it ends."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        self._running: dict[str, int] = {}
        self._lock = threading.Lock()

    def admit(self, app: AppSpec) -> None:
        with self._lock:
            bucket = self._buckets.get(app.id)
            if bucket is None or bucket.capacity != app.requests_per_minute:
                bucket = TokenBucket(
                    app.requests_per_minute, app.requests_per_minute / 60, self._clock
                )
                self._buckets[app.id] = bucket
            wait = bucket.take()
            if wait > 0:
                raise RateLimitedError(
                    f"app '{app.id}' is over its quota of {app.requests_per_minute} requests "
                    "per minute",
                    retry_after=max(1, math.ceil(wait)),
                )
            running = self._running.get(app.id, 0)
            if running >= app.max_concurrent:
                raise RateLimitedError(
                    f"app '{app.id}' already has {running} calls running "
                    f"(max_concurrent {app.max_concurrent})",
                    retry_after=1,
                )
            self._running[app.id] = running + 1

    def release(self, app: AppSpec) -> None:
        with self._lock:
            self._running[app.id] = max(0, self._running.get(app.id, 0) - 1)
