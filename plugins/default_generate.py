"""Built-in `generate` skill: plain text generation from a prompt, streamed.

The prompt goes to the model as-is (a completion for base models, one user message for chat
models); it is the primitive the OpenAI-compatible API and the benchmarks stand on.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from aios.context import SkillContext
from aios.hookspecs import hookimpl
from aios.prompt import Prompt
from aios.skill import Skill, SkillStream
from aios.types import Capability, Sensitivity


class GenerateInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, max_length=200_000, description="Prompt text.")
    max_tokens: int = Field(default=128, ge=1, le=4096, description="Most tokens to generate.")
    temperature: float = Field(default=0.0, ge=0.0, le=2.0, description="Sampling temperature.")
    stop: list[str] = Field(default_factory=list, max_length=8, description="Stop sequences.")
    seed: int | None = Field(default=None, ge=0, description="Sampling seed.")


class GenerateOutput(BaseModel):
    text: str
    finish_reason: str
    tokens_out: int


class Generate(Skill):
    name = "generate"
    description = "Generate text from a prompt on the best available model."
    Input = GenerateInput
    Output = GenerateOutput
    capabilities = frozenset({Capability.text_generation})
    sensitivity = Sensitivity.personal
    text_field = "prompt"

    def stream(self, inp: Any, ctx: SkillContext) -> SkillStream:
        done = yield from ctx.stream(
            Prompt(input=inp.prompt, raw=True),
            max_tokens=inp.max_tokens,
            temperature=inp.temperature,
            stop=tuple(inp.stop),
            seed=inp.seed,
        )
        return GenerateOutput(
            text=done.text, finish_reason=done.finish_reason, tokens_out=done.tokens_out
        )


@hookimpl
def register_skills(register: Any) -> None:
    register(Generate)
