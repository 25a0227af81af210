"""CPU text generation on llama-cpp-python (GGUF models).

llama.cpp writes its own diagnostics through a C log callback; we route them into structlog at
debug level so they never reach the user's terminal.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from aios.backend import (
    Availability,
    Backend,
    CancelSignal,
    Done,
    GenerationEvent,
    GenerationRequest,
    TextGenerator,
    Token,
)
from aios.backends.llama_cpp_prefill import ChatPrompts, completion_tokens, prefill
from aios.config.schema import ModelFormat, ModelSpec
from aios.errors import ContextLengthError, GenerationError, ModelError
from aios.hookspecs import hookimpl
from aios.structured import SUPPORTED, SchemaCache, to_gbnf

if TYPE_CHECKING:
    from aios.testing.sample import Sample

log = structlog.get_logger("aios.backends.llama_cpp")
_native_log = structlog.get_logger("llama.cpp")

_log_callback: Any = None  # keep the ctypes callback alive for the process lifetime
_log_lock = threading.Lock()


def _import_llama_cpp() -> Any:
    """Import llama_cpp and route its native log into structlog (once per process)."""
    global _log_callback
    import llama_cpp

    with _log_lock:
        if _log_callback is None:

            @llama_cpp.llama_log_callback  # type: ignore[misc]
            def _route(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
                line = text.decode("utf-8", "replace").rstrip()
                if line:
                    _native_log.debug("native", level=level, line=line)

            llama_cpp.llama_log_set(_route, ctypes.c_void_p(0))
            _log_callback = _route
    return llama_cpp


class LlamaCppModel(TextGenerator):
    def __init__(self, spec: ModelSpec, llm: Any) -> None:
        super().__init__(spec, LlamaCppBackend.name)
        self._llm = llm
        # A grammar costs a Python conversion of the schema and a native parse check; agents
        # send the same plan schema on every step, so keep the last few.
        self._grammars: SchemaCache[Any] = SchemaCache(self._compile_grammar)
        self._chat: ChatPrompts | None = None  # built on the first chat request

    def _compile_grammar(self, schema_json: str) -> Any:
        llama_cpp = _import_llama_cpp()
        text = to_gbnf(schema_json)  # what LlamaGrammar.from_json_schema does, errors typed
        check_grammar(llama_cpp, self._open(), text)
        return llama_cpp.LlamaGrammar.from_string(text, verbose=False)

    def count_tokens(self, text: str) -> int:
        return len(self._open().tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def _open(self) -> Any:
        if self._llm is None:  # closed: llama.cpp's freed context must never be touched
            raise GenerationError(f"model '{self.spec.id}' is closed")
        return self._llm

    def stream(
        self, request: GenerationRequest, cancel: CancelSignal | None = None
    ) -> Iterator[GenerationEvent]:
        llm = self._open()
        chunks_seen = 0
        logprobs: list[float] = []
        last_dist: list[Any] = [None]

        def track_logprob(input_ids: Any, scores: Any) -> Any:
            # The token sampled from the previous step's distribution is now the last input id.
            import numpy as np

            if last_dist[0] is not None:
                logprobs.append(float(last_dist[0][int(input_ids[-1])]))
            shifted = scores - scores.max()
            last_dist[0] = shifted - np.log(np.exp(shifted).sum())
            return scores

        t0 = time.perf_counter()
        common: dict[str, Any] = dict(
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
            top_k=request.top_k,
            repeat_penalty=request.repeat_penalty,
            stop=list(request.stop) or None,
            seed=request.seed,
            stream=True,
        )
        if request.logprobs:  # costs a Python pass over the vocabulary per token: opt-in
            common["logits_processor"] = [track_logprob]
        if request.json_schema is not None:
            common["grammar"] = self._grammars.get(request.json_schema)
            # The grammar ends generation when the JSON value closes; a stop string could only
            # cut it short (one that occurs inside a string value).
            common["stop"] = None
        try:
            tokens = self._prompt_tokens(llm, request)
            if tokens is None:
                assert request.messages is not None
                prompt_tokens = self._chat_prompt_tokens(request.messages)
            else:
                prompt_tokens = len(tokens)
                if prompt_tokens + 1 > llm.n_ctx():
                    raise ContextLengthError(
                        f"prompt of {prompt_tokens} tokens does not fit the context window "
                        f"of {llm.n_ctx()} tokens of model '{self.spec.id}'"
                    )
                if not prefill(llm, tokens, cancel):
                    yield self._cancelled_in_prefill(prompt_tokens, t0)
                    return
            if request.messages is not None:
                chunks = llm.create_chat_completion(messages=list(request.messages), **common)
            else:
                # The ids just counted and prefilled: llama.cpp need not tokenize the text again.
                chunks = llm.create_completion(prompt=tokens, **common)
            finish = "stop"
            for chunk in chunks:
                # Compute happens lazily in next(): checking here stops within one token.
                if cancel is not None and cancel.is_set():
                    finish = "cancelled"
                    chunks.close()
                    break
                choice = chunk["choices"][0]
                text = choice.get("text")
                if text is None:
                    text = (choice.get("delta") or {}).get("content") or ""
                if text:
                    chunks_seen += 1
                    yield Token(text)
                if choice.get("finish_reason") == "length":
                    finish = "length"
        except GenerationError:
            raise
        except ValueError as exc:  # llama-cpp-python reports context overflows this way
            kind = ContextLengthError if "context window" in str(exc) else GenerationError
            raise kind(f"model '{self.spec.id}': {exc}") from exc
        yield Done(
            tokens_in=prompt_tokens,
            tokens_out=self._tokens_out(request, prompt_tokens, finish, chunks_seen),
            mean_logprob=sum(logprobs) / len(logprobs) if logprobs else None,
            finish_reason=finish,  # type: ignore[arg-type]
            backend_ms=(time.perf_counter() - t0) * 1000,
        )

    def _prompt_tokens(self, llm: Any, request: GenerationRequest) -> list[int] | None:
        """The token ids the model will read, or None where the chat format is not known."""
        if request.messages is None:
            assert request.prompt is not None
            return completion_tokens(llm, request.prompt)
        if self._chat is None:
            self._chat = ChatPrompts(llm)
        return self._chat.tokens(llm, request.messages)

    def _cancelled_in_prefill(self, prompt_tokens: int, t0: float) -> Done:
        return Done(
            tokens_in=prompt_tokens,
            tokens_out=0,
            mean_logprob=None,
            finish_reason="cancelled",
            backend_ms=(time.perf_counter() - t0) * 1000,
        )

    def _tokens_out(
        self, request: GenerationRequest, prompt_tokens: int, finish: str, chunks: int
    ) -> int:
        # Read the count from the context rather than a per-token Python logits hook: the hook
        # makes llama-cpp-python run a Python sampler over the whole vocabulary every token.
        if request.messages is not None:
            return chunks  # the chat path streams one chunk per token
        evaluated = max(0, self._llm.n_tokens - prompt_tokens)
        # The last sampled token is never evaluated when generation stops at max_tokens.
        return evaluated + 1 if finish == "length" else evaluated

    def _chat_prompt_tokens(self, messages: tuple[dict[str, str], ...]) -> int:
        # The chat template adds a few tokens per message; content dominates the count.
        return sum(self.count_tokens(m.get("content", "")) + 4 for m in messages)

    def close(self) -> None:
        llm, self._llm = self._llm, None
        if llm is not None:
            llm.close()


def check_grammar(llama_cpp: Any, llm: Any, text: str) -> None:
    """Have llama.cpp parse a GBNF grammar now; ``GenerationError`` if it cannot.

    llama-cpp-python hands the grammar to llama.cpp only when a call starts, and a grammar that
    fails to parse there leaves a null sampler that takes the whole process down. (``_model``
    is llama-cpp-python's own handle; it has no public way to reach the vocabulary.)
    """
    sampler = llama_cpp.llama_sampler_init_grammar(llm._model.vocab, text.encode("utf-8"), b"root")
    if not sampler:
        raise GenerationError(
            "llama.cpp cannot parse the grammar made from json_schema", hint=SUPPORTED
        )
    llama_cpp.llama_sampler_free(sampler)


class LlamaCppBackend(Backend):
    name = "llama_cpp"
    description = "CPU inference of GGUF models with llama-cpp-python (llama.cpp)."
    formats = frozenset({ModelFormat.gguf})

    def probe(self) -> Availability:
        try:
            llama_cpp = _import_llama_cpp()
        except ImportError as exc:
            return Availability(
                False, f"llama-cpp-python is not installed ({exc}); pip install llama-cpp-python"
            )
        version = metadata.version("llama_cpp_python")
        info = llama_cpp.llama_print_system_info().decode("utf-8", "replace")
        simd = [f for f in ("AVX512", "AVX2", "NEON", "SVE") if f"{f} = 1" in info]
        where = f"CPU {'/'.join(simd) or 'generic'}, {os.cpu_count()} cores"
        return Availability(True, f"llama-cpp-python {version}, {where}", {"system_info": info})

    def footprint_mb(self, spec: ModelSpec, path: Path) -> float | None:
        from aios.memory.footprint import gguf_footprint_cached

        return gguf_footprint_cached(path, spec.context_length).total_mb

    @classmethod
    def conformance_sample(cls, workdir: Path) -> Sample:
        from aios.testing.samples import smollm2_sample

        return smollm2_sample(workdir, cls.name)

    def load(self, spec: ModelSpec, path: Path | None) -> LlamaCppModel:
        if path is None:
            raise ModelError(f"model '{spec.id}' has no file for llama.cpp")
        llama_cpp = _import_llama_cpp()
        if not path.is_file():
            raise ModelError(f"model '{spec.id}': file not found: {path}")
        with path.open("rb") as f:
            magic = f.read(4)
        if magic != b"GGUF":
            raise ModelError(
                f"model '{spec.id}': {path} is not a GGUF file (corrupt or wrong format)"
            )
        try:
            llm = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=spec.context_length,
                n_threads=spec.threads or os.cpu_count(),
                n_batch=512,
                seed=0,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelError(f"model '{spec.id}': llama.cpp cannot load {path}: {exc}") from exc
        return LlamaCppModel(spec, llm)


@hookimpl
def register_backends(register: Any) -> None:
    register(LlamaCppBackend)
