"""The memory governor: admission, LRU eviction, pins, busy models, keep-alive, live memory."""

from __future__ import annotations

import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from aios import Orchestrator
from aios.config.loader import load_config
from aios.memory.governor import MemoryBudgetError, MemoryGovernor, Resident, meminfo_available_mb

from .doubles import ScriptedBackend, ScriptedPlugin

MODEL = """
[[models]]
id = "{id}"
capabilities = ["text-generation"]
parameters_b = 0.3
quantization = "q4_k_m"
format = "gguf"
tier = "device"
memory_mb = {mb}
context_length = 512
backends = ["scripted"]
prompt_format = "base"
source = {{ path = "{weights}" }}
{extra}
"""

BASE = """
schema_version = 1
[oem]
id = "test"
name = "Test"
[device]
profile = "small"
[[profiles]]
name = "small"
ram_mb = 4096
soc_vendor = "generic"
soc_model = "t"
os_reserve_mb = 2048
keepalive_reserve_mb = 1048
backends = ["scripted"]
[prompt_formats.base]
style = "completion"
template = "{input}"
[plugins]
autoload = false
"""


def orchestrator(
    tmp_path: Path, models: list[tuple[str, int, str]], tail: str = ""
) -> Orchestrator:
    weights = tmp_path / "w.gguf"
    weights.write_bytes(b"GGUF")
    text = (
        BASE
        + "".join(
            textwrap.dedent(MODEL.format(id=i, mb=mb, weights=weights, extra=extra))
            for i, mb, extra in models
        )
        + tail
    )
    path = tmp_path / "oem.toml"
    path.write_text(text, encoding="utf-8")
    cfg, resolved = load_config(path)
    ScriptedBackend.loaded = []
    orch = Orchestrator(
        cfg,
        config_path=resolved,
        strict=True,
        ledger=False,
        extra_plugins=(("scripted", ScriptedPlugin()),),
    )
    orch.governor._available = lambda: None  # the profile's 1000 MB budget, not this machine's
    return orch


def run(orch: Orchestrator, model: str) -> Any:
    return orch.invoke("generate", {"prompt": "x", "max_tokens": 1}, model=model)


def test_lru_eviction_keeps_within_budget(tmp_path: Path) -> None:
    orch = orchestrator(tmp_path, [("a", 400, ""), ("b", 400, ""), ("c", 400, "")])
    try:
        run(orch, "a")
        run(orch, "b")
        run(orch, "a")  # a is now more recently used than b
        run(orch, "c")  # 1200 MB > 1000 MB: evict the least recently used, b
        resident = sorted(k[0] for k in orch.governor.resident)
        assert resident == ["a", "c"] and orch.governor.evictions == 1
        assert orch.governor.used_mb() <= orch.governor.budget_mb() == 1000
    finally:
        orch.close()


def test_pinned_models_are_never_evicted(tmp_path: Path) -> None:
    orch = orchestrator(tmp_path, [("a", 400, ""), ("b", 400, ""), ("c", 400, "")])
    try:
        run(orch, "a")
        assert orch.models.pin("a")
        run(orch, "b")
        run(orch, "c")  # a is older but pinned: b goes
        assert sorted(k[0] for k in orch.governor.resident) == ["a", "c"]
    finally:
        orch.close()


def test_too_big_or_blocked_is_a_typed_error_and_nothing_half_loads(tmp_path: Path) -> None:
    orch = orchestrator(tmp_path, [("a", 600, ""), ("b", 600, "")])
    try:
        run(orch, "a")
        orch.models.pin("a")
        with pytest.raises(
            MemoryBudgetError,
            match=r"model 'b' needs 600 MB but only 400 MB .* held by a \(600 MB, pinned\)",
        ):
            run(orch, "b")
        assert [k[0] for k in orch.governor.resident] == ["a"]
        assert len(ScriptedBackend.loaded) == 1, "b must not be loaded when it was not admitted"
        orch.models.pin("a", False)
        assert run(orch, "b").record.model == "b"
    finally:
        orch.close()


def test_a_model_in_use_is_not_evicted_a_load_waits_for_it(tmp_path: Path) -> None:
    orch = orchestrator(tmp_path, [("a", 600, ""), ("b", 600, "")])
    try:
        run(orch, "a")
        [(_, gate)] = orch.models.loaded()
        results: list[Any] = []
        with gate.slot():  # a generation in progress holds the model's slot
            t = threading.Thread(target=lambda: results.append(run(orch, "b")))
            t.start()
            t.join(0.3)
            assert t.is_alive() and len(ScriptedBackend.loaded) == 1, "b waits; a stays"
        t.join(5)
        record = results[0].record
        assert record.model == "b" and record.queue_ms >= 250  # waited for a to finish
        assert [k[0] for k in orch.governor.resident] == ["b"]
    finally:
        orch.close()


def test_waiting_for_memory_is_bounded_by_the_queue_timeout(tmp_path: Path) -> None:
    orch = orchestrator(
        tmp_path, [("a", 600, ""), ("b", 600, "")], "[scheduling]\nqueue_timeout_s = 0.2\n"
    )
    try:
        run(orch, "a")
        [(_, gate)] = orch.models.loaded()
        with gate.slot():
            with pytest.raises(MemoryBudgetError, match=r"held by a \(600 MB, in use\)"):
                run(orch, "b")
        assert run(orch, "b").record.model == "b"
    finally:
        orch.close()


def test_keep_alive_unloads_idle_models(tmp_path: Path) -> None:
    orch = orchestrator(tmp_path, [("a", 300, "keep_alive_s = 60"), ("b", 300, "")])
    now = [1000.0]
    orch.governor._clock = lambda: now[0]
    try:
        run(orch, "a")
        run(orch, "b")
        now[0] += 61
        run(orch, "b")  # any access sweeps expired models
        assert [k[0] for k in orch.governor.resident] == ["b"]
    finally:
        orch.close()


def test_budget_is_the_lower_of_profile_and_live_memory() -> None:
    gov = MemoryGovernor(1000, available_mb=lambda: 300)
    gov.admit(Resident(("a", "x"), 200), evict=lambda key: None)
    assert gov.budget_mb() == 500  # 300 MB free now + the 200 MB our model already holds
    with pytest.raises(MemoryBudgetError, match="needs 600 MB; the memory budget is 500 MB"):
        gov.admit(Resident(("b", "x"), 600), evict=lambda key: None)
    assert MemoryGovernor(1000, available_mb=lambda: None).budget_mb() == 1000


def test_meminfo_is_read_from_proc(tmp_path: Path) -> None:
    fake = tmp_path / "meminfo"
    fake.write_text("MemTotal:       24000000 kB\nMemAvailable:    2048000 kB\n")
    assert meminfo_available_mb(str(fake)) == 2000
    assert meminfo_available_mb(str(tmp_path / "missing")) is None
    real = meminfo_available_mb()
    assert real is None or real > 0


def test_concurrent_loads_admit_once(tmp_path: Path) -> None:
    orch = orchestrator(tmp_path, [("a", 400, "")])
    try:
        threads = [threading.Thread(target=run, args=(orch, "a")) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(ScriptedBackend.loaded) == 1 and orch.governor.used_mb() == 400
    finally:
        orch.close()


def test_the_system_keeps_its_free_floor() -> None:
    gov = MemoryGovernor(1000, available_mb=lambda: 300, min_free_mb=100)
    assert gov.budget_mb() == 200
    gov.admit(Resident(("a", "x"), 150), evict=lambda key: None)
    assert gov.budget_mb() == 350  # the 150 MB we hold is ours to reuse


def test_memory_pressure_sheds_idle_models_lru_first_never_pinned_or_busy() -> None:
    free = [2000.0]
    now = [0.0]
    gov = MemoryGovernor(1000, available_mb=lambda: free[0], clock=lambda: now[0], min_free_mb=500)
    evicted: list[str] = []
    for name, busy in (("old", False), ("busy", True), ("pinned", False), ("new", False)):
        now[0] += 1
        gov.admit(Resident((name, "x"), 200, busy=lambda b=busy: b), evict=lambda k: None)
    gov.pin("pinned", True)
    assert gov.shed(lambda k: evicted.append(k[0])) == []  # no pressure: nothing goes
    free[0] = 600  # another app took memory: budget = 600 + 800 - 500 = 900 ≥ 800 held
    assert gov.shed(lambda k: evicted.append(k[0])) == []
    free[0] = 100  # the camera opened: budget = 100 + 800 - 500 = 400, we hold 800
    gov.shed(lambda k: evicted.append(k[0]))
    assert evicted == ["old", "new"]  # least recently used first; busy and pinned stay
    assert sorted(k[0] for k in gov.resident) == ["busy", "pinned"]
    assert gov.shed_count == 2


def test_explicit_load_pin_and_unload(tmp_path: Path) -> None:
    from aios.errors import NoModelAvailableError

    orch = orchestrator(tmp_path, [("a", 600, ""), ("b", 600, "")])
    try:
        loaded = orch.load_model("a", pin=True)
        assert loaded.handle.spec.id == "a" and loaded.load_ms > 0
        with pytest.raises(MemoryBudgetError, match="held by a \\(600 MB, pinned\\)"):
            orch.load_model("b")
        assert orch.pin_model("a", False)
        assert orch.load_model("b").handle.spec.id == "b"  # a, now unpinned, was evicted
        assert orch.unload_model("b") and not orch.unload_model("b")
        assert orch.governor.resident == {}
        with pytest.raises(NoModelAvailableError, match="'zzz' is not in the model matrix"):
            orch.load_model("zzz")
    finally:
        orch.close()
