"""The OpenAI-compatible API: models, chat completions, completions, embeddings.

Each call is an aios skill (`chat`, `generate`, `embed`) routed by the orchestrator like any
other, so permissions, privacy and quotas apply. Responses keep OpenAI's shapes and add the
execution record under ``aios_record`` (clients ignore keys they do not know).
"""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from aios.orchestrator import Result
from aios.service.common import (
    SSE_HEADERS,
    Caller,
    Who,
    error_event,
    invoke,
    sse,
    started,
    stream,
)
from aios.service.errors import BadRequestError, NotFoundError
from aios.service.schemas import error_responses
from aios.types import Capability, Tier

router = APIRouter(prefix="/v1", tags=["openai"])
ERRORS = error_responses(400, 401, 403, 404, 408, 413, 422, 429, 503)
AUTO_MODELS = {"", "auto", "aios", "default"}


class Strict(BaseModel):
    # JSON types as sent, as OpenAI's API checks them: "2" is not a number, "yes" not true.
    model_config = ConfigDict(extra="forbid", strict=True)


class TextPart(Strict):
    type: Literal["text"]
    text: str


class ChatMessage(Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]
    name: str | None = None


class StreamOptions(Strict):
    include_usage: bool = False


class _Sampling(Strict):
    model: str = Field(description="A model id of the matrix, or 'auto' to let aios choose.")
    max_tokens: int | None = Field(default=None, ge=1, le=4096)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0, description="Accepted, ignored.")
    n: int = Field(default=1, ge=1, le=1, description="Only one choice is generated.")
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    seed: int | None = Field(default=None, ge=0)
    user: str | None = Field(default=None, max_length=256)

    def stops(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])


class ChatRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1, max_length=256)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=4096)

    @model_validator(mode="after")
    def _one_token_limit(self) -> ChatRequest:
        both = self.max_tokens is not None and self.max_completion_tokens is not None
        if both and self.max_tokens != self.max_completion_tokens:
            raise ValueError(
                f"max_tokens ({self.max_tokens}) and max_completion_tokens "
                f"({self.max_completion_tokens}) disagree; send one of them"
            )
        return self


class CompletionRequest(_Sampling):
    prompt: str | list[str]
    echo: bool = False


class EmbeddingRequest(Strict):
    model: str
    input: str | list[str]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1, description="Must be the model's own.")
    user: str | None = Field(default=None, max_length=256)


def _model(who: Caller, requested: str, capability: Capability) -> str | None:
    """The matrix model a request names (None: aios chooses); 404 for unknown ones."""
    if requested in AUTO_MODELS:
        return None
    cfg = who.gen.config
    try:
        spec = cfg.model(requested)
    except KeyError:
        raise NotFoundError(
            f"model '{requested}' is not in the model matrix",
            hint="GET /v1/models lists them; 'auto' lets aios choose",
        ) from None
    if capability not in spec.capabilities:
        raise BadRequestError(f"model '{requested}' has no capability '{capability.value}'")
    return requested


def _usage(result: Result) -> dict[str, int]:
    r = result.record
    return {
        "prompt_tokens": r.tokens_in,
        "completion_tokens": r.tokens_out,
        "total_tokens": r.tokens_in + r.tokens_out,
    }


def _finish(reason: str) -> str:
    return reason if reason in ("stop", "length") else "stop"


@router.get("/models", summary="The model matrix (device and cloud), OpenAI style")
def list_models(who: Who) -> dict[str, Any]:
    data = [
        {
            "id": m.id,
            "object": "model",
            "created": 0,
            "owned_by": f"aios-{m.tier.value}",
            "aios": {
                "tier": m.tier.value,
                "family": m.family,
                "capabilities": [c.value for c in m.capabilities],
                "parameters_b": m.parameters_b,
                "context_length": m.context_length,
                "memory_mb": m.memory_mb if m.tier is Tier.device else 0,
            },
        }
        for m in who.gen.config.models
    ]
    return {"object": "list", "data": data}


def _content(msg: ChatMessage) -> str:
    if isinstance(msg.content, str):
        return msg.content
    return "".join(p.text for p in msg.content)


class _Stream:
    """Id and model that every chunk of one streamed completion carries.

    Both become known when the request is routed (before its first text): the id then is the
    execution record's, as in non-streamed replies, and the model is the one chosen for "auto".
    """

    def __init__(self, prefix: str, model: str) -> None:
        self.prefix = prefix
        self.id = f"{prefix}{int(time.time() * 1e6):x}"
        self.model = model
        self.created = int(time.time())

    def routed(self, record: Any) -> None:
        self.id = f"{self.prefix}{record.request_id}"
        self.model = record.model or self.model


async def _relay(
    items: AsyncIterator[Any],
    meta: _Stream,
    chunk: Callable[..., str],
    opening: Callable[[], str] | None,
    delta: Callable[[str], Any],
    empty: Any,
) -> AsyncIterator[str]:
    """A skill's stream as OpenAI chunks: text deltas, then one last chunk with the finish
    reason, usage and execution record, then ``[DONE]`` (errors as an error event)."""
    async for item in items:
        if not isinstance(item, BaseException) and item.routed is not None:
            meta.routed(item.routed)
            continue
        if opening is not None:
            yield opening()
            opening = None
        if isinstance(item, BaseException):
            yield sse(None, error_event(item))
        elif item.delta is not None:
            yield chunk(delta(item.delta))
        elif item.result is not None:
            res = item.result
            yield chunk(
                empty,
                _finish(res.output.finish_reason),
                usage=_usage(res),
                aios_record=res.record.model_dump(mode="json"),
            )
    yield sse(None, "[DONE]")


@router.post("/chat/completions", responses=ERRORS, summary="Chat completion (OpenAI)")
async def chat_completions(body: ChatRequest, request: Request, who: Who) -> Any:
    who.skill("chat")
    opts = who.options(request, model=_model(who, body.model, Capability.text_generation))
    inp = {
        "messages": [
            {"role": "system" if m.role == "developer" else m.role, "content": _content(m)}
            for m in body.messages
        ],
        "max_tokens": body.max_completion_tokens or body.max_tokens or 256,
        "temperature": body.temperature,
        "stop": body.stops(),
        "seed": body.seed,
    }
    created = int(time.time())
    if not body.stream:
        result = await invoke(who, "chat", inp, opts)
        out = result.output
        return {
            "id": f"chatcmpl-{result.record.request_id}",
            "object": "chat.completion",
            "created": created,
            "model": result.record.model or body.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": out.text},  # type: ignore[attr-defined]
                    "finish_reason": _finish(out.finish_reason),  # type: ignore[attr-defined]
                    "logprobs": None,
                }
            ],
            "usage": _usage(result),
            "aios_record": result.record.model_dump(mode="json"),
        }
    items = await started(stream(who, request, "chat", inp, opts))
    meta = _Stream("chatcmpl-", body.model)

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        return sse(
            None,
            {
                "id": meta.id,
                "object": "chat.completion.chunk",
                "created": meta.created,
                "model": meta.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                **extra,
            },
        )

    def opening() -> str:
        return chunk({"role": "assistant", "content": ""})

    events = _relay(items, meta, chunk, opening, lambda text: {"content": text}, {})
    return StreamingResponse(events, media_type="text/event-stream", headers=SSE_HEADERS)


@router.post("/completions", responses=ERRORS, summary="Text completion (OpenAI)")
async def completions(body: CompletionRequest, request: Request, who: Who) -> Any:
    who.skill("generate")
    opts = who.options(request, model=_model(who, body.model, Capability.text_generation))
    prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
    if len(prompts) != 1:
        raise BadRequestError("give exactly one prompt (batches are not supported)")
    inp = {
        "prompt": prompts[0],
        "max_tokens": body.max_tokens or 16,
        "temperature": body.temperature,
        "stop": body.stops(),
        "seed": body.seed,
    }
    created = int(time.time())
    prefix = prompts[0] if body.echo else ""
    if not body.stream:
        result = await invoke(who, "generate", inp, opts)
        out = result.output
        return {
            "id": f"cmpl-{result.record.request_id}",
            "object": "text_completion",
            "created": created,
            "model": result.record.model or body.model,
            "choices": [
                {
                    "index": 0,
                    "text": prefix + out.text,  # type: ignore[attr-defined]
                    "finish_reason": _finish(out.finish_reason),  # type: ignore[attr-defined]
                    "logprobs": None,
                }
            ],
            "usage": _usage(result),
            "aios_record": result.record.model_dump(mode="json"),
        }
    items = await started(stream(who, request, "generate", inp, opts))
    meta = _Stream("cmpl-", body.model)

    def chunk(text: str, finish: str | None = None, **extra: Any) -> str:
        return sse(
            None,
            {
                "id": meta.id,
                "object": "text_completion",
                "created": meta.created,
                "model": meta.model,
                "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": None}],
                **extra,
            },
        )

    def echoed() -> str:
        return chunk(prefix)

    events = _relay(items, meta, chunk, echoed if prefix else None, lambda text: text, "")
    return StreamingResponse(events, media_type="text/event-stream", headers=SSE_HEADERS)


@router.post("/embeddings", responses=ERRORS, summary="Embeddings (OpenAI), on device only")
async def embeddings(body: EmbeddingRequest, request: Request, who: Who) -> dict[str, Any]:
    who.skill("embed")
    texts = [body.input] if isinstance(body.input, str) else body.input
    opts = who.options(request, model=_model(who, body.model, Capability.embedding))
    result = await invoke(who, "embed", {"texts": texts}, opts)
    out = result.output
    vectors: list[list[float]] = out.vectors  # type: ignore[attr-defined]
    if body.dimensions is not None and body.dimensions != out.dimensions:  # type: ignore[attr-defined]
        raise BadRequestError(
            f"model '{out.model}' makes {out.dimensions}-dimensional vectors, "  # type: ignore[attr-defined]
            f"not {body.dimensions}"
        )
    data = []
    for i, vec in enumerate(vectors):
        emb: Any = vec
        if body.encoding_format == "base64":
            emb = base64.b64encode(np.asarray(vec, dtype="<f4").tobytes()).decode("ascii")
        data.append({"object": "embedding", "index": i, "embedding": emb})
    n = sum(max(1, len(t.split())) for t in texts)  # the encoder counts no tokens: words
    return {
        "object": "list",
        "data": data,
        "model": out.model,  # type: ignore[attr-defined]
        "usage": {"prompt_tokens": n, "total_tokens": n},
        "aios_record": result.record.model_dump(mode="json"),
    }
