"""Model admission: concurrency limits, the fair priority queue, queue limits and cancellation."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aios.config.loader import load_config
from aios.errors import CancelledError
from aios.orchestrator import Orchestrator
from aios.routing.policy import RequestOptions
from aios.scheduler import Gate, ModelRetiredError, QueueFullError, QueueTimeoutError
from aios.types import Priority
from tests.doubles import ScriptedBackend, ScriptedPlugin

FG, BG = Priority.foreground, Priority.background


def wait_until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "condition not reached in time"
        time.sleep(0.002)


class Queue:
    """Threads that queue on a held gate one at a time, so their arrival order is known."""

    def __init__(self, gate: Gate) -> None:
        self.gate = gate
        self.served: list[str] = []
        self.errors: dict[str, BaseException] = {}
        self.threads: list[threading.Thread] = []

    def add(self, label: str, priority: Priority = FG, app: str = "", **kw: Any) -> None:
        def run() -> None:
            try:
                with self.gate.slot(priority, app, **kw):
                    self.served.append(label)
            except Exception as exc:
                self.errors[label] = exc

        before = self.gate.stats().waiting
        t = threading.Thread(target=run)
        t.start()
        self.threads.append(t)
        wait_until(lambda: self.gate.stats().waiting == before + 1)

    def join(self) -> None:
        for t in self.threads:
            t.join(5)


def test_capacity_is_never_exceeded() -> None:
    gate = Gate("m", capacity=2, max_queue=16)
    running, peak = [0], [0]
    lock = threading.Lock()

    def work() -> None:
        with gate.slot():
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            time.sleep(0.01)
            with lock:
                running[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert peak[0] == 2
    stats = gate.stats()
    assert (stats.active, stats.waiting, stats.granted) == (0, 0, 8)


def test_foreground_before_background_and_fifo_within_a_priority() -> None:
    gate = Gate("m", capacity=1, max_queue=16)
    q = Queue(gate)
    gate.acquire()
    q.add("bg1", BG)
    q.add("fg1", FG)
    q.add("bg2", BG)
    q.add("fg2", FG)
    gate.release()
    q.join()
    assert q.served == ["fg1", "fg2", "bg1", "bg2"]


def test_apps_take_turns_within_a_priority() -> None:
    gate = Gate("m", capacity=1, max_queue=16)
    q = Queue(gate)
    gate.acquire()
    for i in range(3):
        q.add(f"chat{i}", app="chat")
    q.add("mail0", app="mail")
    q.add("notes0", app="notes")
    gate.release()
    q.join()
    # one app's burst does not make the others wait behind all of it
    assert q.served == ["chat0", "mail0", "notes0", "chat1", "chat2"]


def test_background_that_waited_too_long_is_not_starved() -> None:
    gate = Gate("m", capacity=1, max_queue=16, aging_s=0.05)
    q = Queue(gate)
    gate.acquire()
    q.add("bg", BG)
    time.sleep(0.08)
    q.add("fg", FG)
    gate.release()
    q.join()
    assert q.served == ["bg", "fg"]


def test_queue_limit_refuses_at_once_with_a_clear_error() -> None:
    gate = Gate("m", capacity=1, max_queue=1)
    q = Queue(gate)
    gate.acquire()
    q.add("waiting")
    t0 = time.monotonic()
    with pytest.raises(QueueFullError, match=r"model 'm' is busy: 1 running, 1 queued \(limit 1\)"):
        gate.acquire()
    assert time.monotonic() - t0 < 0.05
    gate.release()
    q.join()
    assert q.served == ["waiting"] and gate.stats().rejected_full == 1


def test_queue_timeout() -> None:
    gate = Gate("m", capacity=1, max_queue=4)
    gate.acquire()
    with pytest.raises(QueueTimeoutError, match=r"model 'm' \(queue timeout 0.05 s\)"):
        gate.acquire(timeout_s=0.05)
    stats = gate.stats()
    assert (stats.waiting, stats.timed_out, stats.active) == (0, 1, 1)


def test_a_cancelled_waiter_leaves_the_queue_at_once() -> None:
    gate = Gate("m", capacity=1, max_queue=4)
    q = Queue(gate)
    cancel = threading.Event()
    gate.acquire()
    q.add("cancelled", cancel=cancel)
    q.add("next")
    t0 = time.monotonic()
    cancel.set()
    wait_until(lambda: gate.stats().waiting == 1)
    assert time.monotonic() - t0 < 0.2
    gate.release()
    q.join()
    assert q.served == ["next"]
    assert isinstance(q.errors["cancelled"], CancelledError)
    assert gate.stats().cancelled_waiting == 1 and gate.stats().active == 0


def test_retire_sends_waiters_away_and_waits_for_running_calls() -> None:
    gate = Gate("m", capacity=1, max_queue=4)
    q = Queue(gate)
    gate.acquire()
    q.add("queued")
    done = threading.Event()
    retirer = threading.Thread(target=lambda: (gate.retire(), done.set()))
    retirer.start()
    wait_until(lambda: "queued" in q.errors)
    assert isinstance(q.errors["queued"], ModelRetiredError)
    assert not done.wait(0.05), "retire must wait for the running call"
    gate.release()
    assert done.wait(5)
    with pytest.raises(ModelRetiredError):
        gate.acquire()


# -- through the orchestrator -------------------------------------------------------------
def _orch(tmp_path: Path, scripted_config: Path, extra: str = "") -> Orchestrator:
    text = scripted_config.read_text(encoding="utf-8")
    marker = 'id = "small"\n'
    path = tmp_path / "sched.toml"
    path.write_text(text.replace(marker, marker + extra), encoding="utf-8")
    ScriptedBackend.available = True
    ScriptedBackend.loaded = []
    cfg, resolved = load_config(path)
    return Orchestrator(
        cfg, config_path=resolved, strict=True, extra_plugins=(("scripted", ScriptedPlugin()),)
    )


def test_requests_queue_by_priority_through_the_orchestrator(
    tmp_path: Path, scripted_config: Path
) -> None:
    orch = _orch(tmp_path, scripted_config)
    finished: list[str] = []
    try:
        holder = orch.stream("generate", {"prompt": "x"}, model="small")
        assert next(holder).delta  # the stream is suspended mid-generation, holding the slot
        [(_, gate)] = orch.models.loaded()

        def call(label: str, priority: Priority) -> None:
            opts = RequestOptions(model="small", priority=priority, app=label)
            result = orch.invoke("generate", {"prompt": label}, options=opts)
            assert result.record.priority is priority and result.record.queue_ms > 0
            finished.append(label)

        threads = []
        for label, prio in (("bg", BG), ("fg", FG)):
            threads.append(threading.Thread(target=call, args=(label, prio)))
            threads[-1].start()
            queued = len(threads)
            wait_until(lambda: gate.stats().waiting == queued)  # noqa: B023 - read at once
        list(holder)
        for t in threads:
            t.join(5)
        assert finished == ["fg", "bg"]
        assert gate.stats().active == 0
    finally:
        orch.close()


def test_full_queue_is_a_typed_error_when_the_cloud_is_not_allowed(
    tmp_path: Path, scripted_config: Path
) -> None:
    orch = _orch(tmp_path, scripted_config, "max_queue = 0\n")
    try:
        holder = orch.stream("generate", {"prompt": "x"}, model="small")
        next(holder)
        opts = RequestOptions(model="small", mode="local_only")
        with pytest.raises(QueueFullError, match="model 'small' is busy"):
            orch.invoke("generate", {"prompt": "y"}, options=opts)
        list(holder)
        assert orch.invoke("generate", {"prompt": "z"}, options=opts).record.status == "ok"
    finally:
        orch.close()


def test_unloading_while_queued_reloads_and_serves(tmp_path: Path, scripted_config: Path) -> None:
    orch = _orch(tmp_path, scripted_config)
    try:
        holder = orch.stream("generate", {"prompt": "x"}, model="small")
        next(holder)
        [(_, gate)] = orch.models.loaded()
        out: list[Any] = []
        t = threading.Thread(
            target=lambda: out.append(orch.invoke("generate", {"prompt": "q"}, model="small"))
        )
        t.start()
        wait_until(lambda: gate.stats().waiting == 1)
        unloader = threading.Thread(target=orch.models.unload, args=("small",))
        unloader.start()
        list(holder)  # the running call finishes; then the model is closed
        t.join(5)
        unloader.join(5)
        assert out and out[0].record.status == "ok"
        assert len(ScriptedBackend.loaded) == 2, "the queued call loads the model again"
    finally:
        orch.close()


def test_cancel_on_the_real_model_stops_within_a_token_and_frees_the_slot(
    reference: Orchestrator,
) -> None:
    cancel = threading.Event()
    events = reference.stream(
        "generate", {"prompt": "Once upon a time", "max_tokens": 200}, cancel=cancel
    )
    deltas = [next(events).delta]
    gate = next(g for h, g in reference.models.loaded() if h.spec.id == "gemma3-270m")
    waiter_done = threading.Event()
    queued: list[Any] = []

    def queued_call() -> None:
        queued.append(reference.invoke("generate", {"prompt": "Hi", "max_tokens": 4}))
        waiter_done.set()

    t = threading.Thread(target=queued_call)
    t.start()
    wait_until(lambda: gate.stats().waiting == 1)
    cancel.set()
    t0 = time.monotonic()
    with pytest.raises(CancelledError):
        for event in events:
            deltas.append(event.delta)
    assert len(deltas) <= 2, "generation must stop within one token step"
    assert waiter_done.wait(30), "the freed slot goes to the queued request"
    t.join(5)
    assert queued[0].record.status == "ok"
    assert time.monotonic() - t0 < 30
