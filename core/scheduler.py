"""Admission to a loaded model: a concurrency limit, a fair priority queue, and a queue limit.

Each loaded model has one ``Gate``. At most ``capacity`` calls run on it at once (llama.cpp
keeps one mutable context per model, so 1 there). Callers beyond that wait in a queue:
foreground before background; within a priority, apps take turns (one app's burst of requests
cannot starve another app), and each app's own requests stay in order. A background request that
has waited longer than ``aging_s`` is served as if it were foreground, so it is never starved.

A freed slot is handed directly to the chosen waiter, so a newcomer can never barge past the
queue. A waiter leaves the queue as soon as its request is cancelled or its wait times out.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from aios.backend import CancelSignal
from aios.errors import AIOSError, CancelledError
from aios.types import Priority

# How often a queued waiter looks at its cancel signal: the bound on how late a cancelled
# waiter leaves the queue. Waking is event-driven; this only limits the poll for cancellation.
_CANCEL_POLL_S = 0.01


class QueueFullError(AIOSError):
    """The model's queue is at its limit; the caller may try another model or tier."""

    code = "queue_full"


class QueueTimeoutError(AIOSError):
    """A request waited longer than the queue timeout for a model."""

    code = "queue_timeout"


class ModelRetiredError(AIOSError):
    """The model was unloaded while the request waited; load it again and retry."""

    code = "model_retired"


@dataclass
class _Waiter:
    priority: Priority
    app: str
    enqueued: float
    granted: threading.Event = field(default_factory=threading.Event)
    retired: bool = False


@dataclass
class GateStats:
    active: int
    waiting: int
    granted: int
    rejected_full: int
    timed_out: int
    cancelled_waiting: int


class Gate:
    def __init__(
        self,
        model_id: str,
        capacity: int,
        max_queue: int,
        *,
        aging_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.model_id = model_id
        self.capacity = capacity
        self.max_queue = max_queue
        self.aging_s = aging_s
        self._clock = clock
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        # priority -> app -> that app's waiters in arrival order; app order is the turn order.
        self._queues: dict[Priority, OrderedDict[str, deque[_Waiter]]] = {
            p: OrderedDict() for p in Priority
        }
        self._waiting = 0
        self._active = 0
        self._retired = False
        self._granted = self._rejected = self._timed_out = self._cancelled = 0

    # -- state ----------------------------------------------------------------------------
    def busy(self) -> bool:
        """True while a call runs or waits: the governor never evicts such a model."""
        with self._lock:
            return self._active > 0 or self._waiting > 0

    def stats(self) -> GateStats:
        with self._lock:
            return GateStats(
                self._active,
                self._waiting,
                self._granted,
                self._rejected,
                self._timed_out,
                self._cancelled,
            )

    # -- acquire / release ----------------------------------------------------------------
    @contextmanager
    def slot(
        self,
        priority: Priority = Priority.foreground,
        app: str = "",
        cancel: CancelSignal | None = None,
        timeout_s: float | None = None,
    ) -> Iterator[float]:
        """Hold one of the model's slots; yields the seconds spent waiting in the queue."""
        waited = self.acquire(priority, app, cancel, timeout_s)
        try:
            yield waited
        finally:
            self.release()

    def acquire(
        self,
        priority: Priority = Priority.foreground,
        app: str = "",
        cancel: CancelSignal | None = None,
        timeout_s: float | None = None,
    ) -> float:
        """Take a slot, waiting in the queue if needed; returns the seconds waited."""
        with self._lock:
            if self._retired:
                raise ModelRetiredError(f"model '{self.model_id}' was unloaded")
            if self._active < self.capacity and self._waiting == 0:
                self._active += 1
                self._granted += 1
                return 0.0
            if self._waiting >= self.max_queue:
                self._rejected += 1
                raise QueueFullError(
                    f"model '{self.model_id}' is busy: {self._active} running, "
                    f"{self._waiting} queued (limit {self.max_queue})"
                )
            waiter = _Waiter(priority, app, self._clock())
            self._queues[priority].setdefault(app, deque()).append(waiter)
            self._waiting += 1
        return self._wait(waiter, cancel, timeout_s)

    def _wait(self, waiter: _Waiter, cancel: CancelSignal | None, timeout_s: float | None) -> float:
        deadline = None if timeout_s is None else waiter.enqueued + timeout_s
        while True:
            step = _CANCEL_POLL_S if cancel is not None else None
            if deadline is not None:
                left = deadline - self._clock()
                step = max(0.0, left) if step is None else max(0.0, min(step, left))
            if waiter.granted.wait(step):
                if waiter.retired:
                    raise ModelRetiredError(f"model '{self.model_id}' was unloaded")
                return self._clock() - waiter.enqueued
            cancelled = cancel is not None and cancel.is_set()
            expired = deadline is not None and self._clock() >= deadline
            if not (cancelled or expired):
                continue
            with self._lock:
                if waiter.granted.is_set():
                    if waiter.retired:
                        raise ModelRetiredError(f"model '{self.model_id}' was unloaded")
                    # Granted in the same instant: pass the slot on rather than leak it.
                    self._release_locked()
                else:
                    self._remove_locked(waiter)
                if cancelled:
                    self._cancelled += 1
                else:
                    self._timed_out += 1
            waited = self._clock() - waiter.enqueued
            if cancelled:
                raise CancelledError(
                    f"request was cancelled after {waited:.2f} s in the queue for model "
                    f"'{self.model_id}'"
                )
            raise QueueTimeoutError(
                f"waited {waited:.1f} s for model '{self.model_id}' (queue timeout {timeout_s:g} s)"
            )

    def release(self) -> None:
        with self._lock:
            self._release_locked()

    def _release_locked(self) -> None:
        nxt = self._next_locked()
        if nxt is None:
            self._active -= 1
            if self._active == 0:
                self._idle.notify_all()
            return
        self._granted += 1
        nxt.granted.set()  # the slot passes straight to the waiter; _active is unchanged

    def _next_locked(self) -> _Waiter | None:
        if self._waiting == 0:
            return None
        fg, bg = self._queues[Priority.foreground], self._queues[Priority.background]
        queue = fg
        if bg:
            oldest = min(q[0].enqueued for q in bg.values())
            if not fg or self._clock() - oldest >= self.aging_s:
                queue = bg
        if queue is bg and fg:
            # An aged background request goes first: take the longest-waiting app's turn.
            app = min(bg, key=lambda a: bg[a][0].enqueued)
        else:
            app = next(iter(queue))
        waiters = queue.pop(app)
        waiter = waiters.popleft()
        if waiters:
            queue[app] = waiters  # back of the turn order
        self._waiting -= 1
        return waiter

    def _remove_locked(self, waiter: _Waiter) -> None:
        queue = self._queues[waiter.priority]
        waiters = queue.get(waiter.app)
        if waiters is None or waiter not in waiters:
            return
        waiters.remove(waiter)
        if not waiters:
            del queue[waiter.app]
        self._waiting -= 1

    # -- unload ---------------------------------------------------------------------------
    def retire(self, timeout_s: float | None = None) -> bool:
        """Refuse new calls, send queued ones away, and wait until running calls finish.

        Returns False if calls were still running after ``timeout_s``.
        """
        with self._lock:
            self._retired = True
            for queue in self._queues.values():
                for waiters in queue.values():
                    for w in waiters:
                        w.retired = True
                        w.granted.set()
                queue.clear()
            self._waiting = 0
            return self._idle.wait_for(lambda: self._active == 0, timeout_s)
