"""Download progress per model, written by the download thread and read by any other thread
(the feature status, the service's status endpoint, the CLI's progress bar)."""

from __future__ import annotations

import threading
import time
from typing import Any


class Progress:
    """One model's download: ``downloading`` or ``verifying``, then removed, or ``failed``."""

    def __init__(self, model: str, url: str, bytes_total: int | None) -> None:
        self.model = model
        self.url = url
        self._lock = threading.Lock()
        self.state = "downloading"
        self.bytes_done = 0
        self.bytes_total = bytes_total
        self.started_at = time.time()
        self.error: str | None = None
        self.attempts = 0
        self._t0 = time.monotonic()
        self._moved = 0  # bytes received over the network by this process, for the rate

    def resume_from(self, bytes_done: int, bytes_total: int | None) -> None:
        """A new attempt starts with ``bytes_done`` already on disk."""
        with self._lock:
            self.attempts += 1
            self.bytes_done = bytes_done
            if bytes_total is not None:
                self.bytes_total = bytes_total

    def advance(self, n: int) -> None:
        with self._lock:
            self.bytes_done += n
            self._moved += n

    def set_state(self, state: str, error: str | None = None) -> None:
        with self._lock:
            self.state = state
            self.error = error

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            elapsed = max(time.monotonic() - self._t0, 1e-6)
            total = self.bytes_total
            return {
                "state": self.state,
                "url": self.url,
                "bytes_done": self.bytes_done,
                "bytes_total": total,
                "percent": round(100.0 * self.bytes_done / total, 1) if total else None,
                "started_at": self.started_at,
                "rate_bps": round(self._moved / elapsed, 1),
                "attempts": self.attempts,
                "error": self.error,
            }


class ProgressRegistry:
    """Thread-safe map of model id to its download in progress (or its last failure)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, Progress] = {}

    def begin(self, model: str, url: str, bytes_total: int | None) -> Progress:
        progress = Progress(model, url, bytes_total)
        with self._lock:
            self._items[model] = progress
        return progress

    def end(self, model: str) -> None:
        """Forget a finished download (the installed file now speaks for it)."""
        with self._lock:
            self._items.pop(model, None)

    def get(self, model: str) -> dict[str, Any] | None:
        with self._lock:
            progress = self._items.get(model)
        return progress.as_dict() if progress is not None else None

    def snapshot(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            items = list(self._items.items())
        return {model: p.as_dict() for model, p in items}
