"""Running a plan: one skill call per step through the orchestrator, within the agent's limits.

Every step goes through ``SkillContext.call_skill``, so routing, privacy, memory and quotas apply
to it and its record nests in the agent's. A step whose input comes from a step that read
private data (a search of the user's notes, a photo's tags) is marked sensitive and stays on the
device, whatever the routing would otherwise choose. A failing step, or the deadline, ends the
run with the steps done so far (a partial result); cancelling the request cancels the whole plan.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field

from aios.agents.plan import Plan, references
from aios.agents.refs import NothingToWorkOn, resolve
from aios.context import SkillContext
from aios.errors import AIOSError, CancelledError
from aios.types import DataClass, Sensitivity

StepStatus = Literal["ok", "failed", "skipped", "timed_out"]


class StepReport(BaseModel):
    n: int = Field(description="Step number, from 1.")
    skill: str
    status: StepStatus
    why: str | None = Field(default=None, description="What the plan said the step is for.")
    tier: str | None = Field(default=None, description="Where it ran: device or cloud.")
    model: str | None = None
    private: str | None = Field(
        default=None, description="Why the step was kept on the device, when its input was."
    )
    latency_ms: float = 0.0
    output: dict[str, Any] | None = None
    error: str | None = None


class PlanScope:
    """A cancel event for the plan's steps: set when the request is cancelled or the plan's
    deadline passes (then ``timed_out`` says which)."""

    def __init__(self, parent: threading.Event, timeout_s: float) -> None:
        self.event = threading.Event()
        self.timed_out = False
        self.timeout_s = timeout_s
        self._parent = parent
        self._deadline = time.monotonic() + timeout_s
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="aios-plan-deadline", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._done.is_set():
            if self._parent.is_set():
                self.event.set()
                return
            left = self._deadline - time.monotonic()
            if left <= 0:
                self.timed_out = True
                self.event.set()
                return
            self._done.wait(min(0.05, left))

    def close(self) -> None:
        self._done.set()


@dataclass
class PlanRun:
    """What running a plan produced: outputs by step number, and a report per step."""

    plan: Plan
    reports: list[StepReport] = field(default_factory=list)
    outputs: dict[int, tuple[str, BaseModel]] = field(default_factory=dict)
    error: str | None = None

    @property
    def complete(self) -> bool:
        return self.error is None and all(r.status == "ok" for r in self.reports)

    def output(self, skill: str) -> BaseModel | None:
        """The last output of ``skill`` in this run, if it ran."""
        found = [out for name, out in self.outputs.values() if name == skill]
        return found[-1] if found else None


def _private_source(
    ctx: SkillContext, step_input: Any, taints: dict[int, str], names: dict[int, str]
) -> tuple[str | None, set[DataClass]]:
    """Why this input must stay on the device (it holds private data), and its data classes."""
    reasons, classes = [], set()
    for n, _ in references(step_input):
        if n in taints:
            reasons.append(f"step {n} ({names[n]}) {taints[n]}")
            classes |= set(ctx.skill_contract(names[n]).data_classes)
    return ("input from " + "; ".join(dict.fromkeys(reasons))) if reasons else None, classes


def _taint(ctx: SkillContext, skill: str, inherited: str | None) -> str | None:
    cls = ctx.skill_contract(skill)
    private = set(cls.data_classes) & set(ctx.config.routing.private_data_classes)
    if cls.sensitivity is Sensitivity.private:
        return "read private data"
    if private:
        return "handled " + ", ".join(sorted(d.value for d in private))
    return "carried private data" if inherited else None


def _event(ctx: SkillContext, report: StepReport, total: int, status: str) -> None:
    ctx.event(
        {
            "step": report.n,
            "of": total,
            "skill": report.skill,
            "status": status,
            "tier": report.tier,
            "model": report.model,
            "latency_ms": round(report.latency_ms, 1),
            "error": report.error,
        }
    )


def execute(
    ctx: SkillContext, plan: Plan, scope: PlanScope, *, stream_last: bool = True
) -> Generator[str, None, PlanRun]:
    """Run ``plan`` step by step; yields the last step's text as it streams (and an empty
    string after each step event, so streaming callers send progress at once)."""
    run = PlanRun(plan)
    agent = ctx.skill_contract(ctx.record.skill)
    # A private agent (its input is a photo) keeps every step on the device.
    agent_private = (
        f"agent '{agent.name}' handles private data"
        if agent.sensitivity is Sensitivity.private
        else None
    )
    taints: dict[int, str] = {}
    names: dict[int, str] = {}
    total = len(plan.steps)
    for n, step in enumerate(plan.steps, start=1):
        names[n] = step.skill
        report = StepReport(n=n, skill=step.skill, status="skipped", why=step.why)
        run.reports.append(report)
        if run.error is not None:
            continue  # the rest of a broken plan is reported, not run
        if ctx.cancel.is_set():
            raise CancelledError(f"request {ctx.record.request_id} was cancelled")
        if scope.timed_out:
            report.status, report.error = "timed_out", f"the plan's {scope.timeout_s:g} s ran out"
            run.error = f"step {n} ({step.skill}) not started: {report.error}"
            _event(ctx, report, total, report.status)
            continue
        try:
            inp = resolve(step.input, run.outputs)
        except NothingToWorkOn as exc:
            report.error = str(exc)
            run.error = f"step {n} ({step.skill}) skipped: {exc}"
            _event(ctx, report, total, report.status)
            continue
        private, classes = _private_source(ctx, step.input, taints, names)
        private = agent_private or private
        classes |= set(agent.data_classes)
        report.private = private
        _event(ctx, report, total, "running")
        yield ""
        t0 = time.perf_counter()
        kwargs: dict[str, Any] = dict(
            sensitive_because=private, data_classes=classes, cancel=scope.event
        )
        try:
            if stream_last and n == total:
                out = yield from ctx.stream_skill(step.skill, inp, **kwargs)
            else:
                out = ctx.call_skill(step.skill, inp, **kwargs)
        except CancelledError:
            if not scope.timed_out:
                raise  # the request itself was cancelled: the whole plan stops
            report.status, report.error = "timed_out", f"the plan's {scope.timeout_s:g} s ran out"
            run.error = f"step {n} ({step.skill}) {report.error}"
        except AIOSError as exc:
            report.status, report.error = "failed", str(exc)
            run.error = f"step {n} ({step.skill}) failed: {exc}"
        else:
            report.status = "ok"
            run.outputs[n] = (step.skill, out)
            report.output = out.model_dump(mode="json")
            taint = _taint(ctx, step.skill, private)
            if taint:
                taints[n] = taint
        report.latency_ms = (time.perf_counter() - t0) * 1000
        nested = ctx.record.steps[-1] if ctx.record.steps else None
        if nested is not None and nested.skill == step.skill:
            report.tier = nested.tier.value if nested.tier else None
            report.model = nested.model
        _event(ctx, report, total, report.status)
        yield ""
    return run
