"""The backend contract: how aios talks to an inference runtime.

A backend class is registered through the ``register_backends`` hook. It must not import its
runtime at module top; ``probe`` says whether it can run here (and exactly why not), ``load``
turns a model file into a ``LoadedModel``.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from aios.config.schema import ModelFormat, ModelSpec, OEMConfig

if TYPE_CHECKING:
    from aios.testing.sample import Sample


class CancelSignal(Protocol):
    """Anything with ``is_set()``: a ``threading.Event`` or the context's halt signal."""

    def is_set(self) -> bool: ...


@dataclass(frozen=True)
class Availability:
    available: bool
    reason: str  # always filled: what was found, or exactly what is missing
    details: dict[str, Any] = field(default_factory=dict)


class GenerationRequest(BaseModel):
    """One text-generation call, already rendered for the model's family."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: str | None = Field(default=None, description="Completion-style prompt text.")
    messages: tuple[dict[str, str], ...] | None = Field(
        default=None, description="Chat messages, rendered by the model's own chat template."
    )
    max_tokens: int = Field(default=256, ge=1, le=32_768)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    top_p: float = Field(default=0.95, gt=0.0, le=1.0)
    top_k: int = Field(default=40, ge=0, le=1000)
    repeat_penalty: float = Field(default=1.1, ge=1.0, le=2.0)
    stop: tuple[str, ...] = Field(default=(), max_length=16)
    seed: int | None = Field(default=None, ge=0)
    logprobs: bool = Field(
        default=False, description="Report the mean token log-probability (cascade routing)."
    )
    # A plain dict, though the model is frozen: nothing hashes a request (``messages`` holds
    # dicts already), and frozen only guards against reassigning the field.
    json_schema: dict[str, Any] | None = Field(
        default=None,
        description="Constrain the output to JSON matching this schema "
        "(grammar-constrained decoding).",
    )

    @model_validator(mode="after")
    def _has_input(self) -> GenerationRequest:
        if self.prompt is None and self.messages is None:
            raise ValueError("a generation request needs `prompt` or `messages`")
        return self

    @field_validator("json_schema")
    @classmethod
    def _schema_is_json(cls, schema: dict[str, Any] | None) -> dict[str, Any] | None:
        # Backends convert the schema's JSON text and key their grammar caches on it.
        if schema is not None:
            try:
                json.dumps(schema, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"json_schema is not plain JSON: {exc}") from None
        return schema


@dataclass
class Token:
    """A streamed piece of generated text."""

    text: str


@dataclass
class Done:
    """The end of a generation, with its accounting."""

    tokens_in: int
    tokens_out: int
    finish_reason: Literal["stop", "length", "cancelled"]
    backend_ms: float
    mean_logprob: float | None = None  # when the request asked for logprobs
    cost_cny: float = 0.0  # accounted cost of this call (cloud endpoints)
    retries: int = 0


GenerationEvent = Token | Done


class LoadedModel(ABC):
    """A model resident in memory on one backend."""

    spec: ModelSpec
    backend_name: str
    # Calls one loaded instance can serve at once. llama.cpp keeps one mutable context per
    # model, so 1; thread-safe runtimes (onnxruntime sessions, remote servers) allow more.
    # The scheduler never exceeds it, whatever the config asks.
    parallel: ClassVar[int] = 1

    def __init__(self, spec: ModelSpec, backend_name: str) -> None:
        self.spec = spec
        self.backend_name = backend_name

    @abstractmethod
    def close(self) -> None:
        """Free the model's memory."""


class TextGenerator(LoadedModel):
    """A loaded model that generates text."""

    @abstractmethod
    def count_tokens(self, text: str) -> int: ...

    @abstractmethod
    def stream(
        self, request: GenerationRequest, cancel: CancelSignal | None = None
    ) -> Iterator[GenerationEvent]:
        """Yield ``Token`` events, then exactly one ``Done``.

        Must check ``cancel`` between tokens and stop within one token step.
        """


class TensorModel(LoadedModel):
    """A loaded model that maps named input arrays to named output arrays (ONNX, TFLite)."""

    # "performance" | "balanced" | "power_saver": set by the orchestrator from device state;
    # NPU backends map it to their power vote for each call (QNN: the HTP performance mode).
    power_mode: str = "balanced"
    # Names of the model's inputs and outputs, in the model's order (set by the backend).
    input_names: Sequence[str] = ()
    output_names: Sequence[str] = ()

    @abstractmethod
    def run(self, inputs: dict[str, Any]) -> dict[str, Any]: ...


@dataclass
class GeneratedImages:
    """What one image-generation call returned, with its accounting."""

    # One dict per image: {"b64_png": base64 data} or {"url": where the endpoint put it}.
    images: list[dict[str, str]]
    backend_ms: float
    cost_cny: float = 0.0
    retries: int = 0


class ImageGenerator(LoadedModel):
    """A loaded model that makes images from a text prompt (an OpenAI-style images endpoint)."""

    @abstractmethod
    def generate_images(self, prompt: str, *, size: str, n: int = 1) -> GeneratedImages:
        """Images for ``prompt`` of ``size`` ("WIDTHxHEIGHT"); raise ``CloudError`` and the
        like on failure."""


class Backend(ABC):
    name: ClassVar[str]
    description: ClassVar[str]
    formats: ClassVar[frozenset[ModelFormat]]

    @abstractmethod
    def probe(self) -> Availability:
        """Say whether this backend can run on this machine, and why not when it cannot."""

    def health(self, spec: ModelSpec) -> str | None:
        """Why this backend cannot take calls for ``spec`` right now, or None.

        ``probe`` answers once per process; this answers per request (an open breaker).
        """
        return None

    def footprint_mb(self, spec: ModelSpec, path: Path) -> float | None:
        """Resident memory ``spec`` will take when loaded from ``path``, estimated from the
        file; None when this backend cannot tell (the config's ``memory_mb`` is used)."""
        return None

    def configure(self, config: OEMConfig) -> None:  # noqa: B027 - optional hook
        """Receive the OEM config once, before any probe (cloud backends read endpoints)."""

    @abstractmethod
    def load(self, spec: ModelSpec, path: Path | None) -> LoadedModel:
        """Load ``spec``; ``path`` is its prepared file (None for cloud models).

        Raise ``ModelError`` on failure.
        """

    @classmethod
    def conformance_sample(cls, workdir: Path) -> Sample | None:
        """A small model this backend loads in seconds, written under ``workdir``, for the
        conformance suite (``aios.testing``); None skips the suite's model checks, saying so.
        Call ``pytest.skip(reason)`` when the sample cannot be made on this machine."""
        return None
