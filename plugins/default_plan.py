"""Built-in `plan` skill: a language model writes an agent's plan as JSON, decoded under the
JSON Schema of the allowed skills' inputs (grammar-constrained on llama.cpp, `response_format`
on cloud endpoints), then checked against those schemas.

It is an ordinary skill, so routing decides where planning runs: on the device, or in the cloud
for a request that is not sensitive when the OEM prefers it (``[skills.plan] mode``). The
request's private data never reaches it: agents plan from the request text, and the steps that
read private data run later, on the device.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from aios.agents.base import PlanExample
from aios.agents.plan import (
    Plan,
    check_plan,
    parse_plan_json,
    plan_schema,
    renumber_references,
)
from aios.context import SkillContext
from aios.errors import InvalidInputError, PlanError
from aios.hookspecs import hookimpl
from aios.prompt import Prompt
from aios.skill import Skill
from aios.types import Capability, Sensitivity

_TOKENS_PER_STEP = 100


class PlanInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request: str = Field(min_length=1, max_length=2000, description="What the user asked for.")
    skills: list[str] = Field(
        min_length=1, max_length=32, description="Skills the plan may use (not agents)."
    )
    max_steps: int = Field(default=4, ge=1, le=16, description="Most steps the plan may have.")
    examples: list[PlanExample] = Field(
        default_factory=list, max_length=4, description="Requests with their plans, as guidance."
    )


class PlanOutput(BaseModel):
    plan: Plan
    raw: str = Field(description="The model's JSON, as generated.")


def _field_line(name: str, prop: dict[str, Any], required: bool) -> str:
    kind = prop.get("type")
    if "enum" in prop:
        kind = "|".join(json.dumps(v) for v in prop["enum"])
    elif "anyOf" in prop:
        kind = "|".join(str(p.get("type", "?")) for p in prop["anyOf"])
    desc = prop.get("description", "")
    need = "required" if required else "optional"
    return f"{name} ({kind}, {need}): {desc}".rstrip(": ")


def describe(skills: dict[str, type[Skill]]) -> str:
    lines = []
    for name, cls in skills.items():
        schema = cls.Input.model_json_schema()
        required = set(schema.get("required", []))
        props = schema.get("properties", {})
        fields = "; ".join(_field_line(k, v, k in required) for k, v in props.items())
        lines.append(f"- {name}: {cls.description} Input: {fields}")
    return "\n".join(lines)


def planning_prompt(inp: PlanInput, skills: dict[str, type[Skill]]) -> str:
    examples = "".join(
        f"Request: {e.request}\nPlan: {json.dumps(e.plan, ensure_ascii=False)}\n\n"
        for e in inp.examples
    )
    # One text serves chat models (as the user message) and base models (as a completion).
    return (
        "You plan tasks for an on-device assistant. Answer with JSON only: "
        '{"steps": [{"skill": NAME, "input": {...}}]}, at most '
        f"{inp.max_steps} steps, using only these skills:\n{describe(skills)}\n"
        "A text input may contain {{N}}: the result of step N.\n\n"
        f"{examples}Request: {inp.request}\nPlan: "
    )


class MakePlan(Skill):
    name = "plan"
    description = (
        "Plan a multi-step task as JSON over the given skills (structured output constrained "
        "to their input schemas); used by agents."
    )
    Input = PlanInput
    Output = PlanOutput
    capabilities = frozenset({Capability.text_generation})
    sensitivity = Sensitivity.personal
    text_field = "request"

    def run(self, inp: Any, ctx: SkillContext) -> PlanOutput:
        skills = {}
        for name in inp.skills:
            cls = ctx.skill_contract(name)
            if cls.kind != "skill":
                raise InvalidInputError(self.name, [f"'{name}' is an agent; plans call skills"])
            skills[name] = cls
        schema = plan_schema(skills, inp.max_steps)
        done = ctx.generate(
            Prompt(input=planning_prompt(inp, skills), raw=True),
            max_tokens=min(80 + _TOKENS_PER_STEP * inp.max_steps, 1024),
            temperature=0.0,
            json_schema=schema,
        )
        try:
            raw = parse_plan_json(done.text)
        except ValueError as exc:
            raise PlanError(self.name, [str(exc), f"output: {done.text[:200]!r}"]) from None
        repairs = renumber_references(raw)
        plan, problems = check_plan(raw, skills, inp.max_steps, planner="model")
        if plan is None:
            raise PlanError(self.name, problems)
        plan.repairs = repairs
        return PlanOutput(plan=plan, raw=done.text)


@hookimpl
def register_skills(register: Any) -> None:
    register(MakePlan)
