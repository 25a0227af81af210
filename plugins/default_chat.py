"""Built-in `chat` and `embed` skills: the primitives of the OpenAI-compatible API.

`chat` takes a whole conversation; the chosen model's prompt format decides how it is asked
(its own chat template for instruct models, a plain transcript for base models). `embed` turns
texts into unit-length vectors with the on-device sentence encoder; it never leaves the device.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from aios.context import SkillContext
from aios.hookspecs import hookimpl
from aios.prompt import Prompt
from aios.skill import Skill, SkillStream
from aios.types import Capability, DataClass, Sensitivity


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Message(Strict):
    role: Literal["system", "user", "assistant"] = Field(description="Who said it.")
    content: str = Field(max_length=200_000, description="What was said.")


class ChatInput(Strict):
    messages: list[Message] = Field(
        min_length=1, max_length=256, description="The conversation so far, oldest first."
    )
    max_tokens: int = Field(default=128, ge=1, le=4096, description="Most tokens to generate.")
    temperature: float = Field(default=0.0, ge=0.0, le=2.0, description="Sampling temperature.")
    stop: list[str] = Field(default_factory=list, max_length=8, description="Stop sequences.")
    seed: int | None = Field(default=None, ge=0, description="Sampling seed.")


class ChatOutput(Strict):
    text: str = Field(description="The assistant's reply.")
    finish_reason: str
    tokens_in: int
    tokens_out: int


class Chat(Skill):
    name = "chat"
    description = "Answer the last message of a conversation (the chat completions API)."
    Input = ChatInput
    Output = ChatOutput
    capabilities = frozenset({Capability.text_generation})
    sensitivity = Sensitivity.personal

    @classmethod
    def input_from_text(cls, text: str) -> dict[str, Any] | None:
        return {"messages": [{"role": "user", "content": text}]}

    @classmethod
    def routing_text(cls, inp: Any) -> str | None:
        # The router ranks single questions; in a conversation that is the latest user turn.
        return next((m.content for m in reversed(inp.messages) if m.role == "user"), None)

    def stream(self, inp: Any, ctx: SkillContext) -> SkillStream:
        messages = tuple(m.model_dump() for m in inp.messages)
        done = yield from ctx.stream(
            Prompt(input="", messages=messages),
            max_tokens=inp.max_tokens,
            temperature=inp.temperature,
            stop=tuple(inp.stop),
            seed=inp.seed,
        )
        return ChatOutput(
            text=done.text,
            finish_reason=done.finish_reason,
            tokens_in=done.tokens_in,
            tokens_out=done.tokens_out,
        )


class EmbedInput(Strict):
    texts: list[str] = Field(
        min_length=1,
        max_length=256,
        description="Texts to embed; only the first 4,096 characters of each are read.",
    )


class EmbedOutput(Strict):
    model: str = Field(description="The encoder that made the vectors.")
    dimensions: int
    vectors: list[list[float]] = Field(description="One unit-length vector per text, in order.")


class Embed(Skill):
    name = "embed"
    description = "Sentence embeddings from the on-device multilingual encoder."
    Input = EmbedInput
    Output = EmbedOutput
    capabilities = frozenset({Capability.embedding})
    sensitivity = Sensitivity.private
    data_classes = frozenset({DataClass.text})

    def run(self, inp: Any, ctx: SkillContext) -> BaseModel:
        vecs = ctx.embed(inp.texts)  # each text cut at aios.context.EMBED_MAX_CHARS
        return EmbedOutput(
            model=ctx.tensor_model(Capability.embedding).id,
            dimensions=int(vecs.shape[1]),
            vectors=[[float(x) for x in row] for row in vecs],
        )


@hookimpl
def register_skills(register: Any) -> None:
    register(Chat)
    register(Embed)
