"""Plans: the steps an agent will run, their JSON Schema for constrained decoding, and checks.

A plan is a list of skill calls. A string in a step's input may refer to an earlier step's
output as ``{{N}}`` (its text) or ``{{N.field}}`` (one field), N counting from 1; the executor
fills them in just before the step runs. The schema a language model decodes against is built
from the allowed skills' own input models, so a plan that parses is already shaped right; the
checks here then validate every input with the skill's pydantic model and every reference.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aios.config.loader import format_loc
from aios.skill import Skill

REF = re.compile(r"\{\{\s*(\d{1,2})(?:\.([A-Za-z_][A-Za-z0-9_]*))?\s*\}\}")
MAX_PLAN_STEPS = 16


class PlanStep(BaseModel):
    model_config = ConfigDict(extra="forbid")

    skill: str = Field(min_length=1, max_length=64, description="The skill to call.")
    input: dict[str, Any] = Field(
        description="The skill's input; strings may hold {{N}} or {{N.field}} references."
    )
    why: str | None = Field(default=None, max_length=300, description="What the step is for.")


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    steps: list[PlanStep] = Field(min_length=1, max_length=MAX_PLAN_STEPS)
    planner: Literal["rules", "model"] = Field(description="Who made the plan.")
    intent: str | None = Field(default=None, description="The rule that matched (rules only).")
    repairs: list[str] = Field(
        default_factory=list, description="References in a model's plan that were renumbered."
    )


def _inline_defs(schema: dict[str, Any], prefix: str, defs: dict[str, Any]) -> dict[str, Any]:
    """The schema with its ``$defs`` moved into ``defs`` under ``prefix`` (refs rewritten), so
    several skills' input schemas can live in one document without name clashes."""
    schema = copy.deepcopy(schema)
    local = schema.pop("$defs", {})

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            out = {}
            for k, v in node.items():
                if k == "$ref" and isinstance(v, str) and v.startswith("#/$defs/"):
                    out[k] = f"#/$defs/{prefix}{v.removeprefix('#/$defs/')}"
                elif k == "title":  # noise for the model, and tokens for the grammar
                    continue
                else:
                    out[k] = rewrite(v)
            return out
        if isinstance(node, list):
            return [rewrite(v) for v in node]
        return node

    for name, sub in local.items():
        defs[prefix + name] = _for_decoding(rewrite(sub))
    return rewrite(schema)


# Keys a grammar gains nothing from (the prompt describes the fields; pydantic checks patterns
# after decoding), and string lengths a plan never needs: llama.cpp's converter expands a
# maxLength into that many grammar repetitions.
_NOT_FOR_DECODING = frozenset({"description", "default", "pattern", "examples", "format"})
_MAX_DECODED_STRING = 200


def _decoded_fields(schema: dict[str, Any]) -> dict[str, Any]:
    """An input schema cut to what a planner should choose: the required fields, and optional
    ones that are a choice (enum, number, flag). Optional free text (a user id with a pattern)
    is left to its default, so a small model cannot invent a value pydantic would refuse."""
    props = schema.get("properties")
    if not isinstance(props, dict):
        return schema
    required = set(schema.get("required", []))

    def is_choice(prop: dict[str, Any]) -> bool:
        options = prop.get("anyOf", [prop])
        return all(
            "enum" in o or "const" in o or o.get("type") in ("integer", "number", "boolean", "null")
            for o in options
        )

    kept = {k: v for k, v in props.items() if k in required or is_choice(v)}
    return {**schema, "properties": kept}


def _for_decoding(node: Any) -> Any:
    if isinstance(node, dict):
        out = {k: _for_decoding(v) for k, v in node.items() if k not in _NOT_FOR_DECODING}
        if isinstance(out.get("maxLength"), int):
            out["maxLength"] = min(out["maxLength"], _MAX_DECODED_STRING)
        return out
    if isinstance(node, list):
        return [_for_decoding(v) for v in node]
    return node


def plan_schema(skills: Mapping[str, type[Skill]], max_steps: int) -> dict[str, Any]:
    """JSON Schema of ``{"steps": [...]}`` whose items are one of the given skills' calls."""
    defs: dict[str, Any] = {}
    variants = []
    for name in sorted(skills):
        prefix = re.sub(r"[^A-Za-z0-9]", "_", name) + "__"
        inp = _for_decoding(
            _decoded_fields(_inline_defs(skills[name].Input.model_json_schema(), prefix, defs))
        )
        variants.append(
            {
                "type": "object",
                "properties": {"skill": {"const": name}, "input": inp},
                "required": ["skill", "input"],
                "additionalProperties": False,
            }
        )
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "steps": {
                "type": "array",
                "items": variants[0] if len(variants) == 1 else {"anyOf": variants},
                "minItems": 1,
                "maxItems": max_steps,
            }
        },
        "required": ["steps"],
        "additionalProperties": False,
    }
    if defs:
        schema["$defs"] = defs
    return schema


def parse_plan_json(text: str) -> Any:
    """The JSON object a planner model produced; ``ValueError`` with the reason if none."""
    text = text.strip()
    start = text.find("{")
    if start < 0:
        raise ValueError("the planner's output holds no JSON object")
    try:
        value, _ = json.JSONDecoder().raw_decode(text[start:])
    except json.JSONDecodeError as exc:
        raise ValueError(f"the planner's output is not valid JSON: {exc.msg}") from None
    return value


def check_plan(
    raw: Any,
    skills: Mapping[str, type[Skill]],
    max_steps: int,
    *,
    planner: Literal["rules", "model"],
    intent: str | None = None,
) -> tuple[Plan | None, list[str]]:
    """Validate a plan against the allowed skills' schemas; (plan, []) or (None, problems)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("steps"), list):
        return None, ['a plan is a JSON object {"steps": [...]}']
    steps = raw["steps"]
    if not steps:
        return None, ["the plan has no steps"]
    if len(steps) > max_steps:
        return None, [f"the plan has {len(steps)} steps; this agent allows at most {max_steps}"]
    problems: list[str] = []
    checked: list[PlanStep] = []
    for i, item in enumerate(steps, start=1):
        try:
            step = PlanStep.model_validate(item)
        except ValidationError as exc:
            problems += [
                f"step {i}: {format_loc(tuple(e['loc']))}: {e['msg']}"
                for e in exc.errors(include_url=False)
            ]
            continue
        cls = skills.get(step.skill)
        if cls is None:
            problems.append(
                f"step {i}: skill '{step.skill}' is not allowed here (allowed: "
                f"{', '.join(sorted(skills))})"
            )
            continue
        problems += [
            f"step {i} ({step.skill}): {p}" for p in _ref_problems(step, i, checked, skills)
        ]
        # A field that is one whole reference takes the earlier output's value at run time,
        # whatever its type; the orchestrator validates the filled-in input then.
        filled = {k for k, v in step.input.items() if isinstance(v, str) and REF.fullmatch(v)}
        try:
            cls.Input.model_validate({k: v for k, v in step.input.items() if k not in filled})
        except ValidationError as exc:
            problems += [
                f"step {i} ({step.skill}): input.{format_loc(tuple(e['loc']))}: {e['msg']}"
                for e in exc.errors(include_url=False)
                if not (e["loc"] and e["loc"][0] in filled)
            ]
        checked.append(step)
    if problems:
        return None, problems
    return Plan(steps=checked, planner=planner, intent=intent), []


def renumber_references(raw: Any) -> list[str]:
    """Read a model plan's reference to its own step or a later one as "the previous step".

    Small models number steps inconsistently ({{2}} inside step 2 meaning step 1's result);
    there is no other sensible reading, and the repair is reported with the plan.
    """
    if not isinstance(raw, dict) or not isinstance(raw.get("steps"), list):
        return []
    repairs: list[str] = []

    def fix(value: Any, index: int) -> Any:
        if isinstance(value, str):

            def sub(m: re.Match[str]) -> str:
                n = int(m.group(1))
                if n < index:
                    return m.group(0)
                repairs.append(f"step {index}: {m.group(0)} read as step {index - 1}")
                field = f".{m.group(2)}" if m.group(2) else ""
                return "{{" + f"{index - 1}{field}" + "}}"

            return REF.sub(sub, value)
        if isinstance(value, dict):
            return {k: fix(v, index) for k, v in value.items()}
        if isinstance(value, list):
            return [fix(v, index) for v in value]
        return value

    for i, step in enumerate(raw["steps"], start=1):
        if i > 1 and isinstance(step, dict) and isinstance(step.get("input"), dict):
            step["input"] = fix(step["input"], i)
    return repairs


def references(value: Any) -> list[tuple[int, str | None]]:
    """Every ``{{N}}`` / ``{{N.field}}`` in a (nested) input value."""
    if isinstance(value, str):
        return [(int(m.group(1)), m.group(2)) for m in REF.finditer(value)]
    if isinstance(value, dict):
        return [r for v in value.values() for r in references(v)]
    if isinstance(value, list):
        return [r for v in value for r in references(v)]
    return []


def _ref_problems(
    step: PlanStep, index: int, earlier: list[PlanStep], skills: Mapping[str, type[Skill]]
) -> list[str]:
    problems = []
    for n, field in references(step.input):
        if not 1 <= n < index or n > len(earlier):
            problems.append(f"{{{{{n}}}}} must refer to an earlier step (1..{index - 1})")
            continue
        source = skills[earlier[n - 1].skill]
        if field is not None and field not in source.Output.model_fields:
            problems.append(
                f"{{{{{n}.{field}}}}}: step {n}'s skill '{source.name}' has no output field "
                f"'{field}' (fields: {', '.join(source.Output.model_fields)})"
            )
    return problems
