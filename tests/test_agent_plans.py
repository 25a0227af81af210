"""Agent mechanics: plans checked against the skills' schemas, references, the rule planners of
the built-in agents, and the executor's limits (failing step, deadline, cancellation, allowlist,
privacy of steps fed with private data). Test skills here need no model; the built-in agents on
real models and files are in test_agents.py."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel

from aios import Agent, Orchestrator, hookimpl
from aios.agents.base import AgentOutput, PlannedAgent, Rule
from aios.agents.plan import check_plan, plan_schema
from aios.agents.refs import NothingToWorkOn, resolve
from aios.agents.runner import PlanRun
from aios.config.loader import load_config
from aios.config.schema import RoutingMode
from aios.errors import CancelledError, InvalidInputError, PlanError, PluginError
from aios.plugins.default_agents import NotesDigest
from aios.plugins.default_search import Search, SearchOutput
from aios.plugins.default_summarize import Summarize
from aios.routing.policy import RequestOptions
from aios.skill import Skill
from aios.types import Sensitivity

from .doubles import ScriptedPlugin

SKILLS: dict[str, type[Skill]] = {"search": Search, "summarize": Summarize}


# -- plans and their schema -----------------------------------------------------------------
def test_plan_schema_is_one_of_the_skills_inputs() -> None:
    schema = plan_schema(SKILLS, 3)
    steps = schema["properties"]["steps"]
    assert steps["maxItems"] == 3 and steps["minItems"] == 1
    names = [v["properties"]["skill"]["const"] for v in steps["items"]["anyOf"]]
    assert names == ["search", "summarize"]
    search_input = steps["items"]["anyOf"][0]["properties"]["input"]
    assert search_input["required"] == ["query"]
    assert search_input["additionalProperties"] is False
    # Bounded for the grammar: no 2,000,000-character strings, no descriptions.
    summarize_text = steps["items"]["anyOf"][1]["properties"]["input"]["properties"]["text"]
    assert summarize_text["maxLength"] <= 400 and "description" not in summarize_text


def test_a_valid_plan_passes_and_bad_ones_say_why() -> None:
    good = {
        "steps": [
            {"skill": "search", "input": {"query": "Beijing", "kind": "docs"}},
            {"skill": "summarize", "input": {"text": "{{1}}", "length": "short"}},
        ]
    }
    plan, problems = check_plan(good, SKILLS, 3, planner="model")
    assert problems == [] and plan is not None and plan.planner == "model"

    cases = {
        "not allowed": {"steps": [{"skill": "delete-all", "input": {}}]},
        "must refer to an earlier step": {
            "steps": [{"skill": "summarize", "input": {"text": "{{2}}"}}]
        },
        "has no output field 'nope'": {
            "steps": [
                {"skill": "search", "input": {"query": "x"}},
                {"skill": "summarize", "input": {"text": "{{1.nope}}"}},
            ]
        },
        "input.kind": {"steps": [{"skill": "search", "input": {"query": "x", "kind": "videos"}}]},
        "input.query": {"steps": [{"skill": "search", "input": {}}]},
        "at most 1": {
            "steps": [
                {"skill": "search", "input": {"query": "x"}},
                {"skill": "search", "input": {"query": "y"}},
            ]
        },
        "JSON object": ["search"],
        "no steps": {"steps": []},
    }
    for expected, raw in cases.items():
        plan, problems = check_plan(
            raw, SKILLS, 1 if expected == "at most 1" else 3, planner="model"
        )
        assert plan is None and any(expected in p for p in problems), (expected, problems)


def test_references_fill_text_and_whole_values() -> None:
    class Tags(BaseModel):
        tags: list[str]

        def agent_text(self) -> str:
            return ", ".join(self.tags)

    outputs = {1: ("image", Tags(tags=["broccoli", "mushroom"]))}
    assert resolve({"labels": "{{1.tags}}"}, outputs) == {"labels": ["broccoli", "mushroom"]}
    assert resolve({"prompt": "Use {{1}}."}, outputs) == {"prompt": "Use broccoli, mushroom."}
    with pytest.raises(NothingToWorkOn, match=r"step 1 \(image\) returned nothing"):
        resolve({"prompt": "{{1}}"}, {1: ("image", Tags(tags=[]))})


def test_search_output_as_text_carries_the_documents() -> None:
    out = SearchOutput.model_validate(
        {
            "query": "q",
            "understood": {},
            "results": [
                {
                    "path": "/n/a.md",
                    "kind": "doc",
                    "title": "Day 1",
                    "score": 1.0,
                    "snippet": "snip",
                    "why": ["text"],
                    "taken_at": None,
                    "place": None,
                    "tags": [],
                    "album": None,
                    "text": "We walked.",
                }
            ],
        }
    )
    assert out.agent_text() == "Day 1. We walked."


# -- the built-in notes agent's rules -------------------------------------------------------
@pytest.mark.parametrize(
    ("request_text", "topic"),
    [
        (
            "find my notes about the Beijing trip from last March and summarise them",
            "the Beijing trip from last March",
        ),
        ("Search my notes on budget planning, then summarize", "budget planning"),
        ("summarize my notes about the Great Wall", "the Great Wall"),
        ("找一下我去年夏天关于杭州的笔记并总结", "去年夏天关于杭州"),
        ("总结一下我关于长城的笔记", "长城"),
    ],
)
def test_notes_rules_read_the_topic(request_text: str, topic: str) -> None:
    inp = NotesDigest.Input(request=request_text)
    for rule in NotesDigest.rules:
        m = rule.match(request_text)
        if m:
            steps = rule.build(m, inp)
            break
    else:
        pytest.fail(f"no rule matched {request_text!r}")
    query = steps[0]["input"]["query"]
    assert query == topic.removeprefix("关于") or query.endswith(topic.split("关于")[-1])
    assert steps[0]["input"]["with_text"] is True and steps[1]["input"]["text"] == "{{1}}"
    plan, problems = check_plan({"steps": steps}, SKILLS, 3, planner="rules")
    assert problems == []


def test_requests_outside_the_rules_match_none() -> None:
    for text in ("what's the weather", "translate this", "summarize"):
        assert not any(rule.match(text) for rule in NotesDigest.rules), text


# -- the executor, on test skills -----------------------------------------------------------
class Text(BaseModel):
    text: str


class Upper(Skill):
    name = "t-upper"
    description = "Upper-cases text."
    Input = Text
    Output = Text

    def run(self, inp: Any, ctx: Any) -> Text:
        return Text(text=inp.text.upper())


class Secret(Skill):
    name = "t-secret"
    description = "Reads the user's private data."
    Input = Text
    Output = Text
    sensitivity = Sensitivity.private

    def run(self, inp: Any, ctx: Any) -> Text:
        return Text(text="SECRET-" + inp.text)


class Fails(Skill):
    name = "t-fails"
    description = "Always refuses its input."
    Input = Text
    Output = Text

    def run(self, inp: Any, ctx: Any) -> Text:
        raise InvalidInputError(self.name, [f"cannot handle {inp.text!r}"])


class Waits(Skill):
    name = "t-waits"
    description = "Waits until cancelled (at most 20 s)."
    Input = Text
    Output = Text
    started: ClassVar[threading.Event] = threading.Event()

    def run(self, inp: Any, ctx: Any) -> Text:
        Waits.started.set()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            ctx.check_cancelled()
            time.sleep(0.01)
        return Text(text="waited")


class ChainOut(AgentOutput):
    last: str | None = None


def _steps(*names: str) -> Any:
    def build(m: Any, inp: Any) -> list[dict[str, Any]]:
        first = {"skill": names[0], "input": {"text": inp.text}}
        rest = [
            {"skill": n, "input": {"text": "{{" + str(i) + "}}"}}
            for i, n in enumerate(names[1:], 1)
        ]
        return [first, *rest]

    return build


class Chain(PlannedAgent):
    name = "t-chain"
    description = "Runs test skills in a chain, by rule."
    Input = Text
    Output = ChainOut
    text_field = "text"
    allowed_skills = frozenset({"t-upper", "t-secret", "t-fails", "t-waits", "generate"})
    max_steps = 4
    timeout_s = 1.0
    model_planning = False
    rules = (
        Rule("fail", (re.compile(r"^fail"),), _steps("t-upper", "t-fails", "t-upper")),
        Rule("wait", (re.compile(r"^wait"),), _steps("t-upper", "t-waits")),
        Rule(
            "leak",
            (re.compile(r"^leak"),),
            lambda m, inp: [
                {"skill": "t-secret", "input": {"text": inp.text}},
                {"skill": "generate", "input": {"prompt": "Go on: {{1}}", "max_tokens": 3}},
            ],
        ),
        Rule("sneak", (re.compile(r"^sneak"),), _steps("t-upper", "embed")),
        Rule("upper", (re.compile(r""),), _steps("t-upper", "t-upper")),
    )

    def finish(self, inp: Any, run: PlanRun, ctx: Any) -> ChainOut:
        last = run.outputs[max(run.outputs)][1] if run.outputs else None
        return ChainOut(**self.common(run), last=getattr(last, "text", None))


class ByHand(Agent):
    """An agent that calls skills itself, with no plan: the same limits hold."""

    name = "t-by-hand"
    description = "Upper-cases its text as many times as asked."
    Input = Text
    Output = Text
    allowed_skills = frozenset({"t-upper", "t-fails"})
    max_steps = 2

    def run(self, inp: Any, ctx: Any) -> Text:
        times, skill = inp.text.split()
        text = "x"
        for _ in range(int(times)):
            text = ctx.call_skill(skill, {"text": text}).text
        return Text(text=text)


class _Plugin:
    @hookimpl
    def register_skills(self, register: Any) -> None:
        for cls in (Upper, Secret, Fails, Waits, Chain, ByHand):
            register(cls)


def _orch(config: Path, extra_toml: str = "") -> Orchestrator:
    if extra_toml:
        config.write_text(config.read_text(encoding="utf-8") + extra_toml, encoding="utf-8")
    cfg, path = load_config(config)
    return Orchestrator(
        cfg,
        config_path=path,
        strict=True,
        ledger=False,
        extra_plugins=(("scripted", ScriptedPlugin()), ("agent-tests", _Plugin())),
    )


def test_a_plan_runs_step_by_step_and_nests_records(scripted_config: Path) -> None:
    orch = _orch(scripted_config)
    events: list[dict[str, Any]] = []
    try:
        result = orch.invoke("t-chain", {"text": "hello"}, on_event=events.append)
    finally:
        orch.close()
    out = result.output
    assert out.status == "ok" and out.last == "HELLO" and out.error is None
    assert [s.status for s in out.steps] == ["ok", "ok"]
    assert [s.skill for s in result.record.steps] == ["t-upper", "t-upper"]
    assert result.record.kind == "agent"
    assert [(e["step"], e["status"]) for e in events] == [
        (1, "running"),
        (1, "ok"),
        (2, "running"),
        (2, "ok"),
    ]


def test_a_failing_step_gives_a_partial_result(scripted_config: Path) -> None:
    orch = _orch(scripted_config)
    try:
        out = orch.invoke("t-chain", {"text": "fail now"}).output
    finally:
        orch.close()
    assert out.status == "partial"
    assert [s.status for s in out.steps] == ["ok", "failed", "skipped"]
    assert "step 2 (t-fails) failed" in out.error and "cannot handle 'FAIL NOW'" in out.error
    assert out.last == "FAIL NOW"  # what was done is kept


def test_the_deadline_stops_a_step_and_keeps_what_was_done(scripted_config: Path) -> None:
    orch = _orch(scripted_config)
    t0 = time.monotonic()
    try:
        out = orch.invoke("t-chain", {"text": "wait"}).output
    finally:
        orch.close()
    assert time.monotonic() - t0 < 5  # the 1 s deadline, not the skill's 20 s
    assert out.status == "partial" and [s.status for s in out.steps] == ["ok", "timed_out"]
    assert "1 s ran out" in out.error


def test_the_oem_can_tighten_an_agents_limits(scripted_config: Path) -> None:
    orch = _orch(scripted_config, "\n[skills.t-chain]\nmax_steps = 1\n")
    try:
        with pytest.raises(PlanError, match="at most 1"):
            orch.invoke("t-chain", {"text": "hello"})
    finally:
        orch.close()


def test_a_plan_may_not_step_outside_the_allowlist(scripted_config: Path) -> None:
    orch = _orch(scripted_config)
    try:
        with pytest.raises(PlanError, match="skill 'embed' is not allowed"):
            orch.invoke("t-chain", {"text": "sneak"})
    finally:
        orch.close()
    orch = _orch(scripted_config, '\n[skills.t-chain]\nallowed_skills = ["t-upper"]\n')
    try:
        with pytest.raises(PlanError, match="skill 't-fails' is not allowed"):
            orch.invoke("t-chain", {"text": "fail"})
    finally:
        orch.close()


def test_an_agent_calling_skills_by_hand_has_the_same_limits(scripted_config: Path) -> None:
    orch = _orch(scripted_config, '\n[skills.t-by-hand]\nallowed_skills = ["t-upper"]\n')
    try:
        assert orch.invoke("t-by-hand", {"text": "2 t-upper"}).output.text == "X"
        with pytest.raises(PlanError, match="at most 2 steps"):
            orch.invoke("t-by-hand", {"text": "3 t-upper"})
        with pytest.raises(PluginError, match="may not call skill 't-fails'"):
            orch.invoke("t-by-hand", {"text": "1 t-fails"})  # the OEM narrowed its list
    finally:
        orch.close()


def test_cancelling_the_request_cancels_the_whole_plan(scripted_config: Path) -> None:
    orch = _orch(scripted_config)
    cancel = threading.Event()
    Waits.started.clear()
    errors: list[BaseException] = []

    def go() -> None:
        try:
            orch.invoke("t-chain", {"text": "wait"}, cancel=cancel)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=go)
    thread.start()
    assert Waits.started.wait(5)
    cancel.set()
    thread.join(5)
    orch.close()
    assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], CancelledError)


def test_a_step_fed_with_private_data_stays_on_the_device(scripted_config: Path) -> None:
    orch = _orch(scripted_config)
    try:
        result = orch.invoke(
            "t-chain",
            {"text": "leak"},
            options=RequestOptions(mode=RoutingMode.prefer_cloud),
        )
    finally:
        orch.close()
    out = result.output
    assert out.status == "ok", out.error
    generate = result.record.steps[1]
    assert generate.skill == "generate" and generate.tier.value == "device"
    privacy = [d.reason for d in generate.reasons if d.stage == "tier"]
    assert privacy == [
        "privacy: the request is marked sensitive (input from step 1 (t-secret) read private data)"
    ]
    assert out.steps[1].private == "input from step 1 (t-secret) read private data"
