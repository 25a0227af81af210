"""``PlannedAgent``: an agent that plans (rules first, then a language model) and runs the plan.

A subclass declares its skills (``allowed_skills``), limits (``max_steps``, ``timeout_s``), the
intents it plans deterministically (``rules``), examples for the model planner, and ``finish``,
which turns the run into its output. The OEM may tighten the limits per agent in
``[skills.NAME]`` (``max_steps``, ``timeout_s``, ``allowed_skills``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field

from aios.agents.plan import Plan, check_plan
from aios.agents.runner import PlanRun, PlanScope, StepReport, execute
from aios.context import SkillContext
from aios.errors import CancelledError, NoModelAvailableError, PlanError
from aios.skill import Agent, AgentLimits, SkillStream

PLANNER_SKILL = "plan"


class AgentOutput(BaseModel):
    """What every planned agent returns beside its own answer fields."""

    status: Literal["ok", "partial"] = Field(
        description="partial: a step failed, was skipped or ran out of time; see error."
    )
    error: str | None = Field(default=None, description="Why the run is partial.")
    plan: Plan
    steps: list[StepReport]


class PlanExample(BaseModel):
    """A request and its plan, shown to the model planner."""

    request: str = Field(min_length=1, max_length=500)
    plan: dict[str, Any]


@dataclass(frozen=True)
class Rule:
    """An intent planned without a model: the first pattern that matches the request wins."""

    intent: str
    patterns: tuple[re.Pattern[str], ...]
    build: Callable[[re.Match[str], Any], list[dict[str, Any]]]

    def match(self, text: str) -> re.Match[str] | None:
        for pattern in self.patterns:
            m = pattern.search(text)
            if m:
                return m
        return None


class PlannedAgent(Agent):
    rules: ClassVar[tuple[Rule, ...]] = ()
    plan_examples: ClassVar[tuple[PlanExample, ...]] = ()
    # False: only the rules plan (intents a small model cannot plan reliably, or a fixed flow).
    model_planning: ClassVar[bool] = True
    support_skills: ClassVar[frozenset[str]] = frozenset({PLANNER_SKILL})

    def request_text(self, inp: Any) -> str:
        """The request in words, for the rules and the model planner."""
        return str(getattr(inp, self.text_field or "", "") or "")

    def make_plan(self, inp: Any, ctx: SkillContext, limits: AgentLimits, scope: PlanScope) -> Plan:
        text = self.request_text(inp)
        skills = {n: ctx.skill_contract(n) for n in sorted(limits.allowed)}
        problems: list[str] = []
        for rule in self.rules:
            m = rule.match(text)
            if m is None:
                continue
            plan, problems = check_plan(
                {"steps": rule.build(m, inp)},
                skills,
                limits.max_steps,
                planner="rules",
                intent=rule.intent,
            )
            if plan is not None:
                ctx.note("skill", f"planned by rule '{rule.intent}'", "rules")
                return plan
            break
        if not self.model_planning:
            why = problems or [f"the request matches none of its intents: {text[:120]!r}"]
            raise PlanError(self.name, why)
        if not text.strip():
            raise PlanError(self.name, ["the request is empty"])
        try:
            out = ctx.call_skill(
                PLANNER_SKILL,
                {
                    "request": text,
                    "skills": sorted(limits.allowed),
                    "max_steps": limits.max_steps,
                    "examples": [e.model_dump() for e in self.plan_examples],
                },
                cancel=scope.event,
            )
        except NoModelAvailableError as exc:
            raise PlanError(self.name, [f"no model can plan it: {exc}"]) from None
        except PlanError as exc:  # the planner's findings, told as this agent's
            raise PlanError(self.name, exc.problems) from None
        except CancelledError:
            if not scope.timed_out:
                raise
            raise PlanError(self.name, [f"planning ran out of the {scope.timeout_s:g} s"]) from None
        plan = out.plan  # type: ignore[attr-defined]
        ctx.note("skill", "planned by the language model", "model")
        return plan  # type: ignore[no-any-return]

    def stream(self, inp: Any, ctx: SkillContext) -> SkillStream:
        limits = self.limits(ctx.config)
        scope = PlanScope(ctx.cancel, limits.timeout_s)
        try:
            plan = self.make_plan(inp, ctx, limits, scope)
            run = yield from execute(ctx, plan, scope)
        finally:
            scope.close()
        return self.finish(inp, run, ctx)

    def finish(self, inp: Any, run: PlanRun, ctx: SkillContext) -> BaseModel:
        """The agent's output from the run (``run.complete`` false: a partial result)."""
        raise NotImplementedError

    @staticmethod
    def common(run: PlanRun) -> dict[str, Any]:
        """The ``AgentOutput`` fields of a run, for ``finish`` to spread into its output."""
        return {
            "status": "ok" if run.complete else "partial",
            "error": run.error,
            "plan": run.plan,
            "steps": run.reports,
        }
