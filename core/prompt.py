"""Task prompts, rendered per model family by the config's prompt formats.

Skills say *what* to ask (instruction, input, labels); the model's prompt format says *how* its
family wants it asked, so a skill works unchanged on a base model and on an instruct model.
"""

from __future__ import annotations

from dataclasses import dataclass

from aios.config.schema import PromptFormat, PromptStyle


@dataclass(frozen=True)
class Prompt:
    input: str
    instruction: str = ""
    input_label: str = "Text"
    answer_label: str = "Answer"
    raw: bool = False  # `input` verbatim: the whole prompt, or the whole user message
    # A whole conversation (OpenAI-style role/content dicts), for the chat API: chat models get
    # it through their own chat template, completion models as a plain transcript.
    messages: tuple[dict[str, str], ...] | None = None


@dataclass(frozen=True)
class RenderedPrompt:
    text: str | None = None
    messages: tuple[dict[str, str], ...] | None = None
    stop: tuple[str, ...] = ()


def render(prompt: Prompt, fmt: PromptFormat) -> RenderedPrompt:
    if prompt.messages is not None:
        return _render_conversation(prompt.messages, fmt)
    body = (
        prompt.input
        if prompt.raw
        else fmt.template.format(
            instruction=prompt.instruction,
            input_label=prompt.input_label,
            input=prompt.input,
            answer_label=prompt.answer_label,
        )
    )
    # A raw prompt is the caller's whole text: the family's stop sequences are not theirs.
    stop = () if prompt.raw else tuple(fmt.stop)
    if fmt.style is PromptStyle.completion:
        return RenderedPrompt(text=body, stop=stop)
    messages: list[dict[str, str]] = []
    if fmt.system:
        messages.append({"role": "system", "content": fmt.system})
    messages.append({"role": "user", "content": body})
    return RenderedPrompt(messages=tuple(messages), stop=stop)


_SPEAKERS = {"system": "System", "user": "User", "assistant": "Assistant"}


def _render_conversation(messages: tuple[dict[str, str], ...], fmt: PromptFormat) -> RenderedPrompt:
    if fmt.style is PromptStyle.chat:
        if fmt.system and not any(m.get("role") == "system" for m in messages):
            messages = ({"role": "system", "content": fmt.system}, *messages)
        return RenderedPrompt(messages=messages)
    lines = [f"{_SPEAKERS.get(m['role'], m['role'])}: {m['content']}" for m in messages]
    return RenderedPrompt(text="\n".join(lines) + "\nAssistant:", stop=("\nUser:",))
