"""Built-in agents, planned and run by ``aios.agents.PlannedAgent``.

- ``photo-recipe``: photo → what food is in it (`image`) → energy per serving (`calories`) →
  a dish to cook (`generate`). A fixed flow, planned by rule; the photo and everything derived
  from it stay on the device.
- ``notes-digest``: "find my notes about X from <time> and summarise them" → `search` (time and
  place in the request become filters) → `summarize`. English and Chinese requests are planned
  by rules; anything else by the language model, under the skills' JSON Schemas.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from aios.agents.base import AgentOutput, PlanExample, PlannedAgent, Rule
from aios.agents.runner import PlanRun
from aios.context import SkillContext
from aios.hookspecs import hookimpl
from aios.index.paths import USER_PATTERN
from aios.types import DataClass, Sensitivity


# -- photo → dish ----------------------------------------------------------------------------
class PhotoRecipeInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str = Field(min_length=1, max_length=4096, description="Path of the photo on device.")
    language: Literal["en", "zh"] = Field(default="en", description="Language of the idea.")


class PhotoRecipeOutput(AgentOutput):
    tags: list[str] = Field(default_factory=list, description="What the photo shows.")
    foods: list[dict[str, Any]] = Field(
        default_factory=list, description="The food among the tags, with energy per serving."
    )
    kcal_total: float | None = Field(default=None, description="One serving of each food.")
    dish: str | None = Field(default=None, description="A dish to cook with them.")


_DISH_PROMPT = {
    "en": "Ingredients: {{2}}.\nA simple dish to cook with them:",
    "zh": "食材：{{2}}。\n用这些食材可以做的一道家常菜：",
}


def _photo_plan(_m: re.Match[str], inp: Any) -> list[dict[str, Any]]:
    return [
        {"skill": "image", "input": {"file": inp.file}, "why": "what is in the photo"},
        {"skill": "calories", "input": {"labels": "{{1.tags}}"}, "why": "which of it is food"},
        {
            "skill": "generate",
            "input": {
                "prompt": _DISH_PROMPT[inp.language],
                "max_tokens": 80,
                "stop": ["\n\n"],
            },
            "why": "a dish to cook with it",
        },
    ]


class PhotoRecipe(PlannedAgent):
    name = "photo-recipe"
    description = (
        "Photograph food: recognise it, estimate its calories and suggest a dish to cook. "
        "Everything runs on the device."
    )
    Input = PhotoRecipeInput
    Output = PhotoRecipeOutput
    sensitivity = Sensitivity.private
    data_classes = frozenset({DataClass.photos})
    file_field = "file"
    allowed_skills = frozenset({"image", "calories", "generate"})
    max_steps = 3
    timeout_s = 120.0
    model_planning = False  # one fixed flow: nothing for a model to plan
    rules = (Rule("photo-to-dish", (re.compile(r""),), _photo_plan),)

    def finish(self, inp: Any, run: PlanRun, ctx: SkillContext) -> PhotoRecipeOutput:
        image, calories, dish = (run.output(s) for s in ("image", "calories", "generate"))
        return PhotoRecipeOutput(
            **self.common(run),
            tags=list(getattr(image, "tags", [])),
            foods=[f.model_dump() for f in getattr(calories, "foods", [])],
            kcal_total=getattr(calories, "kcal_total", None),
            dish=(getattr(dish, "text", "") or "").strip() or None,
        )


# -- notes → summary -------------------------------------------------------------------------
class NotesDigestInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request: str = Field(
        min_length=1,
        max_length=1000,
        description="e.g. 'find my notes about the Beijing trip from last March and summarise "
        "them', or 找一下我去年夏天关于杭州的笔记并总结",
    )
    user: str = Field(default="default", pattern=USER_PATTERN, description="Whose notes.")
    limit: int = Field(default=5, ge=1, le=20, description="Most notes to summarise.")
    length: Literal["short", "medium", "long"] = Field(default="medium")


class NotesDigestOutput(AgentOutput):
    summary: str | None = Field(default=None, description="The summary of the notes found.")
    notes: list[str] = Field(default_factory=list, description="The notes summarised (paths).")


_EN_VERB = r"(?:find|search(?: for)?|look up|get|fetch|show me|pull up|gather)"
_EN_NOTES = r"(?:all\s+)?(?:of\s+)?(?:my\s+)?(?:notes?|documents?|docs|files|writing)"
_EN_SUM = r"summari[sz]e|sum (?:them|it) up|give me (?:a|the) (?:summary|gist)|recap"
_ZH_NOTES = r"(?:笔记|文档|记录|日记|备忘录?)"
_ZH_SUM = r"(?:总结|概括|归纳|摘要|汇总)"

_NOTES_RULES_RAW = (
    # find my notes about X (from T) and summarise them
    rf"^\s*(?:please\s+)?(?:can you\s+)?{_EN_VERB}\s+{_EN_NOTES}\s+(?:about|on|regarding|"
    rf"concerning|from|of|for)?\s*(?P<topic>.+?)[\s,;]+(?:and\s+)?(?:then\s+)?(?:{_EN_SUM})",
    # summarise my notes about X (from T)
    rf"^\s*(?:please\s+)?(?:{_EN_SUM})\s+{_EN_NOTES}\s+(?:about|on|regarding|from|of|for)\s+"
    rf"(?P<topic>.+?)[\s.?!]*$",
    # 找一下我去年夏天关于杭州的笔记并总结
    rf"(?:找|查找|搜索|找出|翻出|查)(?:一下|一找)?(?:我的|我)?(?P<topic>.+?)的?{_ZH_NOTES}"
    rf"[，,。\s]*(?:并|然后|再|帮我)?\s*{_ZH_SUM}",
    # 总结一下我关于X的笔记
    rf"{_ZH_SUM}(?:一下)?(?:我的|我)?(?P<topic>.+?)的?{_ZH_NOTES}",
)
_TOPIC_TRIM = re.compile(r"^(?:关于|有关|about\s+|on\s+)|(?:的)$")


def _notes_plan(m: re.Match[str], inp: Any) -> list[dict[str, Any]]:
    topic = _TOPIC_TRIM.sub("", m.group("topic").strip(" ,，。.")).strip()
    return [
        {
            "skill": "search",
            "input": {
                "query": topic or inp.request,
                "kind": "docs",
                "limit": inp.limit,
                "user": inp.user,
                "with_text": True,
            },
            "why": "find the notes",
        },
        {
            "skill": "summarize",
            "input": {"text": "{{1}}", "length": inp.length},
            "why": "summarise what was found",
        },
    ]


class NotesDigest(PlannedAgent):
    name = "notes-digest"
    description = (
        "Find the user's notes about a topic (time and place understood, English or Chinese) "
        "and summarise them, on device."
    )
    Input = NotesDigestInput
    Output = NotesDigestOutput
    sensitivity = Sensitivity.personal  # the request may be planned in the cloud; notes never
    data_classes = frozenset({DataClass.text})
    text_field = "request"
    allowed_skills = frozenset({"search", "summarize"})
    max_steps = 3
    timeout_s = 180.0
    rules = tuple(
        Rule("find-and-summarize", (re.compile(p, re.IGNORECASE),), _notes_plan)
        for p in _NOTES_RULES_RAW
    )
    plan_examples = (
        PlanExample(
            request="what did I write about the budget last week? give me the gist",
            plan={
                "steps": [
                    {"skill": "search", "input": {"query": "budget last week", "kind": "docs"}},
                    {"skill": "summarize", "input": {"text": "{{1}}", "length": "short"}},
                ]
            },
        ),
    )

    def finish(self, inp: Any, run: PlanRun, ctx: SkillContext) -> NotesDigestOutput:
        found, summary = run.output("search"), run.output("summarize")
        return NotesDigestOutput(
            **self.common(run),
            summary=getattr(summary, "summary", None),
            notes=[r.path for r in getattr(found, "results", [])],
        )


@hookimpl
def register_skills(register: Any) -> None:
    register(PhotoRecipe)
    register(NotesDigest)
