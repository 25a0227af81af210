"""Selection and orchestration logic, on the scripted backend (a test double of the real API)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from pydantic import BaseModel

from aios import (
    CancelledError,
    Capability,
    DataClass,
    InvalidInputError,
    NoModelAvailableError,
    Orchestrator,
    PluginError,
    Sensitivity,
    Skill,
    UnknownSkillError,
    hookimpl,
)
from aios.config.loader import load_config
from aios.config.schema import RoutingMode
from aios.routing.policy import RequestOptions

from .doubles import ScriptedBackend, ScriptedPlugin


def with_plugin(config: Any, name: str, plugin: object) -> Orchestrator:
    """An orchestrator on the scripted backend plus one in-process plugin."""
    cfg, path = load_config(config)
    return Orchestrator(
        cfg,
        config_path=path,
        strict=True,
        extra_plugins=(("scripted", ScriptedPlugin()), (name, plugin)),
    )


def test_first_capable_model_that_fits_is_chosen(scripted: Orchestrator) -> None:
    # "big" needs 4200 MB; the phone's budget is 8192 - 4096 - 3072 = 1024 MB.
    result = scripted.invoke("generate", {"prompt": "hello", "max_tokens": 3})
    rec = result.record
    assert rec.model == "small" and rec.backend == "scripted" and rec.tier.value == "device"
    assert result.output.text == "The council approved "
    rejected = {d.choice: d.reason for d in rec.reasons if not d.accepted}
    assert "needs 4200 MB, device budget is 1024 MB" in rejected["big"]
    assert rec.tokens_in == 1 and rec.tokens_out == 3 and rec.model_calls == 1
    assert rec.latency_ms >= rec.overhead_ms >= 0


def test_models_are_loaded_lazily_and_reused(scripted: Orchestrator) -> None:
    assert ScriptedBackend.loaded == []
    first = scripted.invoke("generate", {"prompt": "a"})
    second = scripted.invoke("generate", {"prompt": "b"})
    assert len(ScriptedBackend.loaded) == 1
    assert first.record.load_ms > 0 and second.record.load_ms == 0


LOCAL = RequestOptions(mode=RoutingMode.local_only)


def test_unavailable_backend_is_skipped_with_its_reason(scripted: Orchestrator) -> None:
    ScriptedBackend.available = False
    with pytest.raises(NoModelAvailableError, match="scripted backend switched off"):
        scripted.invoke("generate", {"prompt": "hello"}, options=LOCAL)


def test_no_model_fits_uses_the_skills_fallback(scripted: Orchestrator) -> None:
    ScriptedBackend.available = False
    text = (
        "The council approved the new library on Tuesday. The library will cost 12 million "
        "dollars. It opens in 2027. Residents argued about the cost for months."
    )
    result = scripted.invoke("summarize", {"text": text, "length": "short"}, options=LOCAL)
    assert result.record.fallback == "extractive"
    assert result.output.method == "extractive"
    assert result.output.summary and len(result.output.summary) < len(text)
    assert any(d.stage == "fallback" for d in result.record.reasons)


def test_requested_model_must_be_in_the_matrix(scripted: Orchestrator) -> None:
    with pytest.raises(NoModelAvailableError, match="'gpt-9' is not in the model matrix"):
        scripted.invoke("generate", {"prompt": "x"}, model="gpt-9")


def test_cloud_models_never_serve_private_skills(scripted_config: Any) -> None:
    class Diary(BaseModel):
        text: str

    class PrivateSkill(Skill):
        name = "diary"
        description = "Reads the user's messages."
        Input = Diary
        Output = Diary
        capabilities = frozenset({Capability.text_generation})
        sensitivity = Sensitivity.private
        data_classes = frozenset({DataClass.messages})

        def run(self, inp: Any, ctx: Any) -> Diary:
            return Diary(text=ctx.generate(__import__("aios").Prompt(input=inp.text)).text)

    class Plugin:
        @hookimpl
        def register_skills(self, register: Any) -> None:
            register(PrivateSkill)

    orch = with_plugin(scripted_config, "diary", Plugin())
    ScriptedBackend.available = False  # no device model can run: cloud is the only candidate
    try:
        with pytest.raises(NoModelAvailableError) as info:
            orch.invoke("diary", {"text": "dear diary"})
        assert "cloud-big: cloud tier excluded by policy" in str(info.value)
        reasons = [d.reason for d in orch.explain("diary", {"text": "dear diary"}).reasons]
        assert "privacy: skill 'diary' handles private data" in reasons
    finally:
        ScriptedBackend.available = True
        orch.close()


def test_invalid_input_names_the_field_and_the_orchestrator_stays_usable(
    scripted: Orchestrator,
) -> None:
    with pytest.raises(
        InvalidInputError, match=r"max_tokens: Input should be greater than or equal to 1"
    ):
        scripted.invoke("generate", {"prompt": "x", "max_tokens": 0})
    with pytest.raises(InvalidInputError, match=r"surprise: Extra inputs are not permitted"):
        scripted.invoke("generate", {"prompt": "x", "surprise": 1})
    assert scripted.invoke("generate", {"prompt": "x"}).record.status == "ok"


def test_unknown_skill_suggests_a_close_name(scripted: Orchestrator) -> None:
    with pytest.raises(UnknownSkillError, match="did you mean 'summarize'"):
        scripted.invoke("sumarize", {"text": "x"})


def test_a_crashing_skill_is_reported_by_plugin_and_others_keep_working(
    scripted_config: Any,
) -> None:
    class In(BaseModel):
        x: int

    class Crashes(Skill):
        name = "crashes"
        description = "Always fails."
        Input = In
        Output = In

        def run(self, inp: Any, ctx: Any) -> In:
            raise ZeroDivisionError("bug in plugin code")

    class Plugin:
        @hookimpl
        def register_skills(self, register: Any) -> None:
            register(Crashes)

    orch = with_plugin(scripted_config, "crashy", Plugin())
    try:
        with pytest.raises(
            PluginError, match="skill 'crashes' \\(plugin 'crashy'\\) failed: ZeroDivisionError"
        ):
            orch.invoke("crashes", {"x": 1})
        assert orch.invoke("generate", {"prompt": "still here"}).record.status == "ok"
    finally:
        orch.close()


def test_cancellation_stops_generation(scripted: Orchestrator) -> None:
    cancel = threading.Event()
    events = scripted.stream("generate", {"prompt": "x", "max_tokens": 5}, cancel=cancel)
    first = next(events)
    assert first.delta == "The "
    cancel.set()
    with pytest.raises(CancelledError):
        list(events)
    [(_, gate)] = scripted.models.loaded()
    assert gate.stats().active == 0, "the model slot must be freed after cancel"


def test_streaming_yields_deltas_then_one_result(scripted: Orchestrator) -> None:
    events = list(scripted.stream("generate", {"prompt": "x", "max_tokens": 4}))
    deltas = [e.delta for e in events if e.delta is not None]
    results = [e.result for e in events if e.result is not None]
    assert len(results) == 1 and events[-1].result is results[0]
    assert "".join(deltas) == results[0].output.text
    assert results[0].record.ttft_ms is not None


def test_agents_call_skills_through_the_orchestrator_and_nest_records(
    scripted_config: Any,
) -> None:
    from aios import Agent

    class Topic(BaseModel):
        text: str

    class Echo(Agent):
        name = "echo_agent"
        description = "Calls generate twice."
        Input = Topic
        Output = Topic
        allowed_skills = frozenset({"generate"})

        def run(self, inp: Any, ctx: Any) -> Topic:
            a = ctx.call_skill("generate", {"prompt": inp.text, "max_tokens": 2})
            b = ctx.call_skill("generate", {"prompt": a.text, "max_tokens": 1})
            return Topic(text=a.text + b.text)

    class Plugin:
        @hookimpl
        def register_skills(self, register: Any) -> None:
            register(Echo)

    orch = with_plugin(scripted_config, "agent", Plugin())
    try:
        result = orch.invoke("echo_agent", {"text": "go"})
        rec = result.record
        assert rec.kind == "agent" and [s.skill for s in rec.steps] == ["generate", "generate"]
        assert rec.tokens_out == 3 == sum(s.tokens_out for s in rec.steps)
    finally:
        orch.close()


def test_one_event_per_request_carries_the_record(scripted: Orchestrator) -> None:
    import structlog

    with structlog.testing.capture_logs() as logs:
        result = scripted.invoke("generate", {"prompt": "x"})
    events = [e for e in logs if e["event"] == "aios.request"]
    assert len(events) == 1
    ev = events[0]
    assert ev["request_id"] == result.record.request_id
    for key in (
        "skill",
        "model",
        "backend",
        "tier",
        "latency_ms",
        "tokens_in",
        "tokens_out",
        "cost_cny",
        "reasons",
    ):
        assert key in ev


def test_agents_may_only_call_allowed_skills(scripted_config: Any) -> None:
    from aios import Agent

    class Topic(BaseModel):
        text: str

    class Sneaky(Agent):
        name = "sneaky"
        description = "Tries a skill outside its allowlist."
        Input = Topic
        Output = Topic
        allowed_skills = frozenset({"generate"})

        def run(self, inp: Any, ctx: Any) -> Topic:
            return ctx.call_skill("summarize", {"text": inp.text})

    class Plugin:
        @hookimpl
        def register_skills(self, register: Any) -> None:
            register(Sneaky)

    orch = with_plugin(scripted_config, "sneaky", Plugin())
    try:
        with pytest.raises(PluginError, match="agent 'sneaky' may not call skill 'summarize'"):
            orch.invoke("sneaky", {"text": "x"})
    finally:
        orch.close()


def test_an_explicitly_requested_model_that_does_not_fit_is_an_error(
    scripted: Orchestrator,
) -> None:
    with pytest.raises(NoModelAvailableError, match="big: needs 4200 MB, device budget is 1024 MB"):
        scripted.invoke("summarize", {"text": "A sentence. Another one."}, model="big")
