"""The skill and agent contract that plugin developers implement.

A skill does one thing: it declares its input and output as pydantic models (their JSON Schemas
are published), the model capabilities it needs and how sensitive its data is. The orchestrator
validates the input, chooses a model and backend, and hands the skill a ``SkillContext`` through
which it generates; the skill never loads models itself.

Implement either ``run`` (return the output) or ``stream`` (a generator that yields text deltas
and *returns* the output).
"""

from __future__ import annotations

import re
from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel

from aios.streams import drain
from aios.types import Capability, DataClass, Sensitivity

if TYPE_CHECKING:
    from aios.config.schema import OEMConfig
    from aios.context import SkillContext

SKILL_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")

SkillStream = Generator[str, None, BaseModel]


class Skill:
    name: ClassVar[str]
    description: ClassVar[str]
    Input: ClassVar[type[BaseModel]]
    Output: ClassVar[type[BaseModel]]
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    sensitivity: ClassVar[Sensitivity] = Sensitivity.personal
    data_classes: ClassVar[frozenset[DataClass]] = frozenset({DataClass.text})
    kind: ClassVar[Literal["skill", "agent"]] = "skill"
    # The input field that `aios run SKILL --file/--text/stdin` fills with text.
    text_field: ClassVar[str | None] = None
    # The input field that `aios run SKILL --file F` fills with the path F itself, for skills
    # that read a file the text way cannot carry (a photo). At most one of the two is set.
    file_field: ClassVar[str | None] = None

    def run(self, inp: Any, ctx: SkillContext) -> BaseModel:
        return drain(self.stream(inp, ctx))

    def stream(self, inp: Any, ctx: SkillContext) -> SkillStream:
        return self.run(inp, ctx)
        yield ""  # pragma: no cover - makes this a generator

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the skill kept between requests (open indexes); the orchestrator
        calls it once when it shuts down."""

    def fallback(self, inp: Any, ctx: SkillContext) -> BaseModel | None:
        """Answer without any model when none fits the device; ``None`` if the skill cannot."""
        return None

    @classmethod
    def input_from_text(cls, text: str) -> dict[str, Any] | None:
        """The input that `aios run SKILL --text/--file/stdin` makes of ``text``; None when the
        skill takes no text. By default ``{text_field: text}``; a chat makes it a user turn."""
        return {cls.text_field: text} if cls.text_field else None

    @classmethod
    def routing_text(cls, inp: Any) -> str | None:
        """The text the learned difficulty router scores for this (validated) input.

        By default the ``text_field``'s value. A skill whose question sits elsewhere (a chat's
        latest user turn) returns that; one with nothing to rank (a folder path) returns None.
        """
        value = getattr(inp, cls.text_field, None) if cls.text_field else None
        return value if isinstance(value, str) else None


class Agent(Skill):
    """A plugin that plans and calls other skills through ``ctx.call_skill``.

    Every call goes through the orchestrator, so routing, privacy and accounting apply to each
    step, and each step's record is nested in the agent's record. ``allowed_skills`` bounds what
    the agent may call.
    """

    kind: ClassVar[Literal["skill", "agent"]] = "agent"
    allowed_skills: ClassVar[frozenset[str]] = frozenset()
    # Skills it calls for itself rather than as steps of its task (a planner): not counted.
    support_skills: ClassVar[frozenset[str]] = frozenset()
    max_steps: ClassVar[int] = 8
    timeout_s: ClassVar[float] = 120.0

    @classmethod
    def limits(cls, config: OEMConfig) -> AgentLimits:
        """The agent's own limits, tightened (never widened) by the OEM's ``[skills.NAME]``."""
        settings = config.skills.get(cls.name)
        allowed, max_steps, timeout_s = set(cls.allowed_skills), cls.max_steps, cls.timeout_s
        if settings is not None:
            if settings.allowed_skills is not None:
                allowed &= set(settings.allowed_skills)
            if settings.max_steps is not None:
                max_steps = min(max_steps, settings.max_steps)
            if settings.timeout_s is not None:
                timeout_s = min(timeout_s, settings.timeout_s)
        return AgentLimits(max_steps, timeout_s, frozenset(allowed))


@dataclass(frozen=True)
class AgentLimits:
    max_steps: int
    timeout_s: float
    allowed: frozenset[str]


def contract_problems(cls: Any) -> list[str]:
    """Everything wrong with a class handed to ``register`` for the skill contract."""
    if not isinstance(cls, type) or not issubclass(cls, Skill):
        return [f"{cls!r} is not a subclass of aios.Skill"]
    problems: list[str] = []
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not SKILL_NAME.match(name):
        problems.append(f"name {name!r} must match {SKILL_NAME.pattern}")
    desc = getattr(cls, "description", None)
    if not isinstance(desc, str) or not desc.strip():
        problems.append("description must be a non-empty string")
    for attr in ("Input", "Output"):
        model = getattr(cls, attr, None)
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            problems.append(f"{attr} must be a pydantic BaseModel subclass")
    caps = getattr(cls, "capabilities", None)
    if not isinstance(caps, frozenset | set) or not all(isinstance(c, Capability) for c in caps):
        problems.append("capabilities must be a set of aios.Capability")
    if not isinstance(getattr(cls, "sensitivity", None), Sensitivity):
        problems.append("sensitivity must be an aios.Sensitivity")
    if cls.run is Skill.run and cls.stream is Skill.stream:
        problems.append("implement run() or stream()")
    inp = getattr(cls, "Input", None)
    if isinstance(inp, type) and issubclass(inp, BaseModel):
        for attr in ("text_field", "file_field"):
            value = getattr(cls, attr, None)
            if value is not None and value not in inp.model_fields:
                problems.append(f"{attr} {value!r} is not a field of Input")
    if cls.text_field is not None and getattr(cls, "file_field", None) is not None:
        problems.append("set text_field or file_field, not both (`--file` fills one of them)")
    return problems
