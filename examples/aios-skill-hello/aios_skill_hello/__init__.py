"""An example third-party aios plugin with two skills.

`hello` needs no model; `headline` asks whichever text-generation model the OEM's matrix picks,
through the same context the built-in skills use.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from aios import Capability, Prompt, Sensitivity, Skill, SkillContext, hookimpl


class HelloInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, description="Who to greet.")
    language: Literal["en", "zh"] = Field(default="en", description="Greeting language.")


class HelloOutput(BaseModel):
    greeting: str


class Hello(Skill):
    name = "hello"
    description = "Greet someone (example third-party skill; needs no model)."
    Input = HelloInput
    Output = HelloOutput
    sensitivity = Sensitivity.public
    text_field = "name"

    def run(self, inp: Any, ctx: SkillContext) -> HelloOutput:
        text = f"你好，{inp.name}！" if inp.language == "zh" else f"Hello, {inp.name}!"
        return HelloOutput(greeting=text)


class HeadlineInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=20_000, description="Article to title.")


class HeadlineOutput(BaseModel):
    headline: str


class Headline(Skill):
    name = "headline"
    description = "Write a headline for a short article (example third-party skill)."
    Input = HeadlineInput
    Output = HeadlineOutput
    capabilities = frozenset({Capability.text_generation})
    text_field = "text"

    def stream(self, inp: Any, ctx: SkillContext):  # type: ignore[no-untyped-def]
        done = yield from ctx.stream(
            Prompt(
                input=inp.text,
                instruction="Write a headline for the article.",
                input_label="Article",
                answer_label="Headline",
            ),
            max_tokens=32,
            until=lambda text: "\n" in text.strip(),
        )
        return HeadlineOutput(headline=done.text.strip().split("\n")[0].strip())


@hookimpl
def register_skills(register: Any) -> None:
    register(Hello)
    register(Headline)
