"""What a running skill sees: its chosen model (loaded lazily), accounting, and the orchestrator."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import structlog
from pydantic import BaseModel

from aios.backend import (
    Done,
    GeneratedImages,
    GenerationRequest,
    ImageGenerator,
    LoadedModel,
    TensorModel,
    TextGenerator,
    Token,
)
from aios.batching import padded_batches
from aios.config.schema import ModelSpec, OEMConfig, PromptFormat
from aios.errors import (
    CancelledError,
    GenerationError,
    InvalidInputError,
    ModelError,
    NoModelAvailableError,
    PlanError,
    PluginError,
)
from aios.prompt import Prompt, render
from aios.record import ExecutionRecord, Stage
from aios.routing.policy import RequestOptions
from aios.scheduler import Gate, ModelRetiredError
from aios.skill import Agent, Skill
from aios.streams import drain
from aios.types import Capability, DataClass

if TYPE_CHECKING:
    from aios.orchestrator import Orchestrator
    from aios.selection import Choice

# A sentence encoder's activations grow with the padded characters of a call: the shipped
# USE v3 takes ~13 KB per character (64 passages of 500 characters peaked 250 MB over its
# weights, 8 of them 38 MB, at the same passages/s). 4,096 bounds a call near 55 MB; a single
# text is cut there too (a 20,000-character one alone took 256 MB), past what a sentence
# encoder represents well anyway.
EMBED_BATCH_CHARS = 4096
EMBED_MAX_CHARS = 4096


@dataclass(frozen=True)
class Completion:
    text: str
    tokens_in: int
    tokens_out: int
    finish_reason: str


class _Halt:
    """Set by the skill's stop condition, or by the request's cancellation."""

    def __init__(self, cancel: threading.Event) -> None:
        self._cancel = cancel
        self._halted = False

    def set(self) -> None:
        self._halted = True

    def is_set(self) -> bool:
        return self._halted or self._cancel.is_set()


@dataclass
class _Accounting:
    """Shared by a context and its forks (a retry on another model is the same request)."""

    inference_ms: float = 0.0
    logprob_sum: float = 0.0
    logprob_tokens: int = 0


class SkillContext:
    def __init__(
        self,
        orchestrator: Orchestrator,
        record: ExecutionRecord,
        choice: Choice | None,
        cancel: threading.Event,
        started: float,
        on_progress: Callable[[int, int, str], None] | None = None,
        options: RequestOptions | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self._orch = orchestrator
        # The request's own options: an agent's steps inherit its privacy and routing choices.
        self.options = options or RequestOptions(priority=record.priority, app=record.app)
        self._on_event = on_event
        self._steps_called = 0
        self.record = record
        self._choice = choice
        self.cancel = cancel
        self._started = started
        self._resident_models: dict[tuple[str, str], tuple[LoadedModel, Gate]] = {}
        self._aux: dict[Capability, Choice] = {}
        self._on_progress = on_progress
        self._acc = _Accounting()
        self.want_logprobs = False
        self.log = structlog.get_logger("aios.skill").bind(
            skill=record.skill, request_id=record.request_id
        )

    def fork(self, choice: Choice) -> SkillContext:
        """A context for the same request on another model (cloud fallback, cascade)."""
        other = SkillContext(
            self._orch,
            self.record,
            choice,
            self.cancel,
            self._started,
            self._on_progress,
            self.options,
            self._on_event,
        )
        other._acc = self._acc
        other.want_logprobs = self.want_logprobs
        return other

    @property
    def inference_ms(self) -> float:
        return self._acc.inference_ms

    @property
    def mean_logprob(self) -> float | None:
        """Mean token log-probability over this request's calls, when the backend reported it."""
        acc = self._acc
        return acc.logprob_sum / acc.logprob_tokens if acc.logprob_tokens else None

    # -- what the skill may ask about its device and model --------------------------------
    @property
    def config(self) -> OEMConfig:
        """The OEM config the orchestrator runs (read-only for skills)."""
        return self._orch.config

    @property
    def base_dir(self) -> Path:
        """The folder relative config paths are taken from."""
        return self._orch.base_dir

    @property
    def model(self) -> ModelSpec | None:
        return self._choice.model if self._choice else None

    @property
    def context_length(self) -> int:
        if self.model is None:
            raise NoModelAvailableError("no model was chosen for this request")
        return self.model.context_length

    @property
    def prompt_format(self) -> PromptFormat:
        model = self.model
        if model is None or model.prompt_format is None:
            raise NoModelAvailableError("the chosen model has no prompt format")
        return self._orch.config.prompt_formats[model.prompt_format]

    def count_tokens(self, text: str) -> int:
        return self._text_model().count_tokens(text)

    def note(self, stage: Stage, reason: str, choice: str | None = None) -> None:
        self.record.decide(stage, reason, choice)

    def use_fallback(self, name: str, reason: str) -> None:
        """Mark that a non-model path answers this request, and why."""
        self.record.fallback = name
        self.record.decide("fallback", reason, name)

    def check_cancelled(self) -> None:
        if self.cancel.is_set():
            raise CancelledError(f"request {self.record.request_id} was cancelled")

    # -- model access -----------------------------------------------------------------------
    def _resident(self, choice: Choice) -> tuple[LoadedModel, Gate]:
        """The chosen model loaded (or reused) for this request, with its scheduler gate."""
        key = (choice.model.id, choice.backend)
        if key not in self._resident_models:
            loaded = self._orch.loaded_model(choice, self.cancel)
            self.record.load_ms += loaded.load_ms
            self.record.queue_ms += loaded.wait_ms
            self._resident_models[key] = (loaded.handle, loaded.gate)
        return self._resident_models[key]

    @contextmanager
    def _slot(self, choice: Choice) -> Iterator[LoadedModel]:
        """The model with one of its slots held: queued fairly, by this request's priority."""
        key = (choice.model.id, choice.backend)
        for attempt in (1, 2):
            handle, gate = self._resident(choice)
            try:
                waited = gate.acquire(
                    self.record.priority,
                    self.record.app or "",
                    self.cancel,
                    self._orch.config.scheduling.queue_timeout_s,
                )
            except ModelRetiredError:
                # Unloaded (evicted or by an operator) while we waited: load it again, once.
                self._resident_models.pop(key, None)
                if attempt == 2:
                    raise
                continue
            self.record.queue_ms += waited * 1000
            break
        try:
            yield handle
        finally:
            gate.release()

    def _text_model(self) -> TextGenerator:
        if self._choice is None:
            raise NoModelAvailableError("no text-generation model was chosen")
        handle, _ = self._resident(self._choice)
        if not isinstance(handle, TextGenerator):
            raise ModelError(f"model '{self._choice.model.id}' cannot generate text")
        return handle

    def _model_for(self, capability: Capability | None) -> Choice:
        """The skill's chosen model, or for another capability an auxiliary device model.

        Auxiliary models (the photo tagger an indexer needs beside its text encoder) are
        chosen on the device tier only: they exist to read the user's own data.
        """
        choice = self._choice
        if choice is not None and (capability is None or capability in choice.model.capabilities):
            return choice
        if capability is None:
            raise NoModelAvailableError("no model was chosen for this request")
        if capability not in self._aux:
            aux = self._orch.auxiliary_model(self.record.skill, capability, self.record)
            if aux is None:
                raise NoModelAvailableError(
                    f"no on-device model with capability '{capability.value}' can run here"
                )
            self._aux[capability] = aux
        return self._aux[capability]

    def tensor_model(self, capability: Capability | None = None) -> ModelSpec:
        """The spec of the model ``run_tensor(..., capability)`` would use (its family, id)."""
        return self._model_for(capability).model

    def run_tensor(
        self, inputs: dict[str, Any], capability: Capability | None = None
    ) -> dict[str, Any]:
        """Run a tensor model (ONNX, TFLite) on named inputs; outputs by name.

        ``capability`` picks an auxiliary on-device model when the skill's own model lacks it.
        """
        self.check_cancelled()
        choice = self._model_for(capability)
        with self._slot(choice) as handle:
            if not isinstance(handle, TensorModel):
                raise ModelError(f"model '{choice.model.id}' is not a tensor model")
            t0 = time.perf_counter()
            try:
                outputs = handle.run(inputs)
            finally:
                self._acc.inference_ms += (time.perf_counter() - t0) * 1000
        self.record.model_calls += 1
        return outputs

    def generate_images(self, prompt: str, *, size: str, n: int = 1) -> GeneratedImages:
        """Images for ``prompt`` from the chosen image-generation model (a cloud endpoint)."""
        self.check_cancelled()
        if self._choice is None:
            raise NoModelAvailableError("no image-generation model was chosen")
        with self._slot(self._choice) as handle:
            if not isinstance(handle, ImageGenerator):
                raise ModelError(f"model '{self._choice.model.id}' cannot generate images")
            t0 = time.perf_counter()
            try:
                result = handle.generate_images(prompt, size=size, n=n)
            finally:
                self._acc.inference_ms += (time.perf_counter() - t0) * 1000
        self.record.model_calls += 1
        self.record.cost_cny += result.cost_cny
        return result

    def tensor_io(self, capability: Capability | None = None) -> tuple[list[str], list[str]]:
        """Input and output names of the tensor model ``capability`` selects (loads it)."""
        handle, _ = self._resident(self._model_for(capability))
        if not isinstance(handle, TensorModel):
            raise ModelError(f"model '{handle.spec.id}' is not a tensor model")
        return list(handle.input_names), list(handle.output_names)

    def embed(self, texts: Sequence[str], batch: int = 64) -> np.ndarray:
        """Unit-length sentence embeddings, shape (len(texts), d), from the embedding model.

        Sentence encoders that take raw strings (the shipped multilingual USE) are fed through
        their single string input. Each text is cut at ``EMBED_MAX_CHARS`` and a call holds at
        most ``batch`` texts and ``EMBED_BATCH_CHARS`` padded characters, which bounds the
        memory it takes whatever the caller sends.
        """
        if not texts:
            raise InvalidInputError(self.record.skill, ["nothing to embed"])
        names_in, names_out = self.tensor_io(Capability.embedding)
        cut = [t[:EMBED_MAX_CHARS] for t in texts]
        vecs: np.ndarray | None = None
        for idx in padded_batches([len(t) for t in cut], batch, EMBED_BATCH_CHARS):
            arr = np.asarray([cut[i] for i in idx], dtype=object)
            out = self.run_tensor({names_in[0]: arr}, Capability.embedding)[names_out[0]]
            part = np.asarray(out, dtype=np.float32).reshape(len(idx), -1)
            if vecs is None:
                vecs = np.empty((len(cut), part.shape[1]), dtype=np.float32)
            vecs[idx] = part
        assert vecs is not None
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        return vecs / np.maximum(norms, 1e-12)

    def progress(self, done: int, total: int, what: str = "") -> None:
        """Report progress of a long request (indexing) to whoever asked to watch it."""
        if self._on_progress is not None:
            self._on_progress(done, total, what)

    # -- generation -----------------------------------------------------------------------
    def stream(
        self,
        prompt: Prompt,
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: tuple[str, ...] = (),
        repeat_penalty: float = 1.1,
        until: Callable[[str], bool] | None = None,
        **options: Any,
    ) -> Generator[str, None, Completion]:
        """Yield text deltas from the chosen model; return the whole ``Completion``.

        ``until(text_so_far)`` returning True stops generation after the current token (for
        stop conditions richer than stop strings, e.g. a blank line *after* some content).
        """
        self.check_cancelled()
        rendered = render(prompt, self.prompt_format)
        request = GenerationRequest(
            prompt=rendered.text,
            messages=rendered.messages,
            max_tokens=max_tokens,
            temperature=temperature,
            stop=rendered.stop + tuple(stop),
            repeat_penalty=repeat_penalty,
            logprobs=self.want_logprobs,
            **options,
        )
        parts: list[str] = []
        done: Done | None = None
        halt = _Halt(self.cancel)
        assert self._choice is not None
        self._text_model()
        with self._slot(self._choice) as slot:
            handle = cast(TextGenerator, slot)
            t0 = time.perf_counter()
            try:
                for event in handle.stream(request, halt):
                    if isinstance(event, Token):
                        if self.record.ttft_ms is None:
                            self.record.ttft_ms = (time.perf_counter() - self._started) * 1000
                        parts.append(event.text)
                        yield event.text
                        if until is not None and until("".join(parts)):
                            halt.set()
                    else:
                        done = event
            finally:
                self._acc.inference_ms += (time.perf_counter() - t0) * 1000
        if done is None:
            raise GenerationError(f"backend '{handle.backend_name}' ended without a result")
        self.record.model_calls += 1
        self.record.tokens_in += done.tokens_in
        self.record.tokens_out += done.tokens_out
        self.record.cost_cny += done.cost_cny
        if done.mean_logprob is not None and done.tokens_out:
            self._acc.logprob_sum += done.mean_logprob * done.tokens_out
            self._acc.logprob_tokens += done.tokens_out
        finish = done.finish_reason
        if finish == "cancelled":
            if self.cancel.is_set():
                raise CancelledError(f"request {self.record.request_id} was cancelled")
            finish = "stop"  # halted by `until`
        return Completion("".join(parts), done.tokens_in, done.tokens_out, finish)

    def generate(self, prompt: Prompt, **kwargs: Any) -> Completion:
        return drain(self.stream(prompt, **kwargs))

    def event(self, data: dict[str, Any]) -> None:
        """Report a structured progress event (an agent's step) to whoever streams this request."""
        if self._on_event is not None:
            self._on_event(data)

    # -- agents ---------------------------------------------------------------------------
    def skill_contract(self, name: str) -> type[Skill]:
        """The registered class of skill ``name`` (its schemas and description), for planners."""
        return self._orch.skill_class(name)

    def _step_options(
        self,
        name: str,
        sensitive_because: str | None,
        data_classes: Iterable[DataClass],
    ) -> RequestOptions:
        caller = self._orch.skill_class(self.record.skill)
        if issubclass(caller, Agent) and name not in caller.support_skills:
            # Enforced here, so an agent that calls skills by hand is held to the same
            # allowlist and step limit (the OEM's tightened ones) as a planned one.
            limits = caller.limits(self.config)
            if name not in limits.allowed:
                raise PluginError(
                    f"agent '{caller.name}' may not call skill '{name}' "
                    f"(allowed: {sorted(limits.allowed)})"
                )
            if self._steps_called >= limits.max_steps:
                raise PlanError(caller.name, [f"it may run at most {limits.max_steps} steps"])
            self._steps_called += 1
        parent = self.options
        # A step carries everything the request carried (an app's sensitive flag, its data
        # classes, the user's routing choice) plus what the step's own inputs add.
        return RequestOptions(
            mode=parent.mode,
            sensitive=parent.sensitive or sensitive_because is not None,
            sensitive_because=parent.sensitive_because or sensitive_because,
            data_classes=frozenset(parent.data_classes) | frozenset(data_classes),
            priority=self.record.priority,
            app=self.record.app,
        )

    def call_skill(
        self,
        name: str,
        inp: dict[str, Any] | BaseModel,
        *,
        sensitive_because: str | None = None,
        data_classes: Iterable[DataClass] = (),
        cancel: threading.Event | None = None,
    ) -> BaseModel:
        """Run another skill through the orchestrator; its record nests in this one.

        ``sensitive_because`` keeps the call on the device and says why (its input came from
        private data); ``cancel`` defaults to this request's own cancellation.
        """
        opts = self._step_options(name, sensitive_because, data_classes)
        result = self._orch.invoke(
            name, inp, options=opts, cancel=cancel or self.cancel, parent=self.record
        )
        return result.output

    def stream_skill(
        self,
        name: str,
        inp: dict[str, Any] | BaseModel,
        *,
        sensitive_because: str | None = None,
        data_classes: Iterable[DataClass] = (),
        cancel: threading.Event | None = None,
    ) -> Generator[str, None, BaseModel]:
        """``call_skill``, yielding the step's text deltas as it generates them."""
        opts = self._step_options(name, sensitive_because, data_classes)
        result = yield from self._orch.run_nested(
            name, inp, options=opts, cancel=cancel or self.cancel, parent=self.record
        )
        return result.output
