"""Test doubles that implement the real interfaces, for selection and orchestration unit tests.

Anything that claims a model works is tested on the real model elsewhere; these only let tests
steer the orchestrator's choices deterministically.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aios import Availability, Backend, Done, GenerationRequest, TextGenerator, Token, hookimpl
from aios.config.schema import ModelFormat, ModelSpec


class ScriptedModel(TextGenerator):
    def __init__(self, spec: ModelSpec, backend_name: str, words: list[str]) -> None:
        super().__init__(spec, backend_name)
        self.words = words
        self.calls: list[GenerationRequest] = []
        self.step = threading.Event()  # tests may pace generation with this

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def stream(self, request: GenerationRequest, cancel: Any = None) -> Iterator[Any]:
        self.calls.append(request)
        prompt = request.prompt or " ".join(m["content"] for m in request.messages or ())
        produced = 0
        finish = "length"
        for word in self.words[: request.max_tokens]:
            if cancel is not None and cancel.is_set():
                finish = "cancelled"
                break
            produced += 1
            yield Token(word + " ")
        else:
            finish = "stop" if len(self.words) < request.max_tokens else "length"
        yield Done(len(prompt.split()), produced, finish, 0.1)  # type: ignore[arg-type]

    def close(self) -> None:
        pass


class ScriptedBackend(Backend):
    name = "scripted"
    description = "Deterministic test backend."
    formats = frozenset({ModelFormat.gguf})
    available = True
    words = ["The", "council", "approved", "the", "library."]
    loaded: list[ScriptedModel] = []

    def probe(self) -> Availability:
        if self.available:
            return Availability(True, "scripted test backend")
        return Availability(False, "scripted backend switched off by the test")

    def load(self, spec: ModelSpec, path: Path) -> ScriptedModel:
        model = ScriptedModel(spec, self.name, list(self.words))
        ScriptedBackend.loaded.append(model)
        return model


class ScriptedPlugin:
    """A plugin object registering the scripted backend through the public hook."""

    @hookimpl
    def register_backends(self, register: Any) -> None:
        register(ScriptedBackend)
