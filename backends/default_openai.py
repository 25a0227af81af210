"""The cloud tier: any OpenAI-compatible server (vLLM, llama.cpp server, a vendor API).

One ``EndpointClient`` and circuit breaker per configured endpoint; a cloud model is a handle
that speaks chat/completions (messages) or completions (prompt) over SSE, embeddings, and
images/generations (for models with the `image-generation` capability).
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aios.backend import (
    Availability,
    Backend,
    CancelSignal,
    Done,
    GeneratedImages,
    GenerationEvent,
    GenerationRequest,
    ImageGenerator,
    TextGenerator,
    Token,
)
from aios.cloud.breaker import BreakerStatus, CircuitBreaker
from aios.config.schema import CloudEndpoint, ModelFormat, ModelSpec, OEMConfig
from aios.errors import CancelledError, CloudResponseError, GenerationError, ModelError
from aios.hookspecs import hookimpl
from aios.structured import request_fields

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_WORD = re.compile(r"[A-Za-z0-9]+|[^\sA-Za-z0-9\u3400-\u9fff\uf900-\ufaff]")


def estimate_tokens(text: str) -> int:
    """Tokenizer-free estimate for remote models: a CJK character or ~0.75 words per token."""
    cjk = len(_CJK.findall(text))
    return cjk + int(len(_WORD.findall(text)) * 1.3)


class CloudModel(TextGenerator, ImageGenerator):
    # A remote server batches concurrent calls itself; the config's max_concurrency limits
    # how many this device keeps in flight.
    parallel = 64

    def __init__(self, spec: ModelSpec, client: Any) -> None:
        super().__init__(spec, OpenAIBackend.name)
        self.client = client
        self.remote = spec.remote_model or spec.id
        self.closed = False

    def count_tokens(self, text: str) -> int:
        return estimate_tokens(text)

    def _body(self, request: GenerationRequest) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {
            "model": self.remote,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
        }
        if request.stop:
            body["stop"] = list(request.stop)
        if request.seed is not None:
            body["seed"] = request.seed
        chat = request.messages is not None
        if request.json_schema is not None:
            endpoint = self.client.endpoint
            extra = request_fields(
                endpoint.structured_output, request.json_schema, chat=chat, endpoint=endpoint.name
            )
            if extra:
                # As on the device: the constrained value ends generation itself, and a stop
                # string could only cut it short.
                body.pop("stop", None)
            body.update(extra)
        if chat:
            return "chat/completions", {**body, "messages": list(request.messages or ())}
        return "completions", {**body, "prompt": request.prompt}

    def stream(
        self, request: GenerationRequest, cancel: CancelSignal | None = None
    ) -> Iterator[GenerationEvent]:
        path, body = self._body(request)
        t0 = time.perf_counter()
        pieces = 0
        usage: dict[str, Any] = {}
        finish = "stop"
        self._check_open()
        events = self.client.stream_events(path, body, cancel)
        try:
            for event in events:
                if event.get("usage"):
                    usage = event["usage"]
                choices = event.get("choices")
                if not isinstance(choices, list) or not choices:
                    continue
                choice = choices[0]
                if not isinstance(choice, dict):
                    raise CloudResponseError(f"endpoint sent a malformed choice: {choice!r:.100}")
                text = choice.get("text")
                if text is None:
                    text = (choice.get("delta") or {}).get("content")
                if text:
                    pieces += 1
                    yield Token(str(text))
                if choice.get("finish_reason") == "length":
                    finish = "length"
        except CancelledError:
            if cancel is None or not cancel.is_set():
                raise
            finish = "cancelled"  # the caller asked: end with a Done, as every backend does
        prompt_text = request.prompt or " ".join(m["content"] for m in request.messages or ())
        tokens_in = int(usage.get("prompt_tokens") or estimate_tokens(prompt_text))
        tokens_out = int(usage.get("completion_tokens") or pieces)
        yield Done(
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            finish_reason=finish,  # type: ignore[arg-type]
            backend_ms=(time.perf_counter() - t0) * 1000,
            cost_cny=self.client.endpoint.call_cost(tokens_in, tokens_out),
            retries=self.client.last_retries,
        )

    def embed(self, texts: list[str]) -> list[list[float]]:
        self._check_open()
        data = self.client.post_json("embeddings", {"model": self.remote, "input": texts})
        try:
            rows = sorted(data["data"], key=lambda d: d.get("index", 0))
            return [_pooled(row["embedding"]) for row in rows]
        except (KeyError, TypeError, ValueError):
            raise CloudResponseError("endpoint sent a malformed embeddings body") from None

    def generate_images(self, prompt: str, *, size: str, n: int = 1) -> GeneratedImages:
        """POST images/generations (the OpenAI images API), asking for base64 PNG data."""
        self._check_open()
        t0 = time.perf_counter()
        body = {
            "model": self.remote,
            "prompt": prompt,
            "n": n,
            "size": size,
            "response_format": "b64_json",
        }
        data = self.client.post_json("images/generations", body)
        name = self.client.endpoint.name
        rows = data.get("data")
        if not isinstance(rows, list) or not rows:
            raise CloudResponseError(f"endpoint '{name}' sent an images body without `data`")
        images: list[dict[str, str]] = []
        for row in rows:
            b64 = row.get("b64_json") if isinstance(row, dict) else None
            url = row.get("url") if isinstance(row, dict) else None
            if isinstance(b64, str) and b64:
                try:
                    base64.b64decode(b64, validate=True)
                except (binascii.Error, ValueError):
                    raise CloudResponseError(
                        f"endpoint '{name}' sent image data that is not base64"
                    ) from None
                images.append({"b64_png": b64})
            elif isinstance(url, str) and url:
                images.append({"url": url})
            else:
                raise CloudResponseError(f"endpoint '{name}' sent an image with no data or url")
        return GeneratedImages(
            images=images,
            backend_ms=(time.perf_counter() - t0) * 1000,
            cost_cny=self.client.endpoint.call_cost(0, 0),
            retries=self.client.last_retries,
        )

    def _check_open(self) -> None:
        if self.closed:
            raise GenerationError(f"model '{self.spec.id}' is closed")

    def close(self) -> None:
        self.closed = True  # nothing to free (the endpoint's client is shared); refuse use


def _pooled(embedding: Any) -> list[float]:
    # Servers without a pooling layer (llama.cpp's, for decoder models) return one vector per
    # token; the mean is the usual sentence vector.
    if embedding and isinstance(embedding[0], list):
        width = len(embedding[0])
        return [sum(tok[i] for tok in embedding) / len(embedding) for i in range(width)]
    return [float(v) for v in embedding]


class OpenAIBackend(Backend):
    name = "openai"
    description = "Cloud models behind OpenAI-compatible HTTP endpoints (SSE streaming)."
    formats = frozenset({ModelFormat.api})

    def __init__(self) -> None:
        self.endpoints: dict[str, CloudEndpoint] = {}
        self.breakers: dict[str, CircuitBreaker] = {}
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def configure(self, config: OEMConfig) -> None:
        self.endpoints = {e.name: e for e in config.cloud.endpoints}
        self.breakers = {
            e.name: CircuitBreaker(e.breaker_failures, e.breaker_cooldown_s)
            for e in config.cloud.endpoints
        }

    def probe(self) -> Availability:
        try:
            import httpx  # noqa: F401
        except ImportError as exc:
            return Availability(False, f"httpx is not installed ({exc})")
        if not self.endpoints:
            return Availability(False, "no cloud endpoints in the OEM config")
        names = ", ".join(sorted(self.endpoints))
        return Availability(True, f"OpenAI-compatible endpoints: {names}")

    def status(self, endpoint: str) -> BreakerStatus | None:
        breaker = self.breakers.get(endpoint)
        return breaker.status() if breaker else None

    def health(self, spec: ModelSpec) -> str | None:
        st = self.status(spec.endpoint) if spec.endpoint else None
        if st is not None and st.state == "open":
            return (
                f"endpoint '{spec.endpoint}' circuit breaker open ({st.last_error}); "
                f"retry in {st.retry_in_s:.0f} s"
            )
        return None

    def client(self, endpoint: str) -> Any:
        from aios.cloud.client import EndpointClient  # imports httpx

        with self._lock:
            if endpoint not in self._clients:
                if endpoint not in self.endpoints:
                    raise ModelError(f"no cloud endpoint named '{endpoint}'")
                self._clients[endpoint] = EndpointClient(
                    self.endpoints[endpoint], self.breakers[endpoint]
                )
            return self._clients[endpoint]

    def load(self, spec: ModelSpec, path: Path | None) -> CloudModel:
        if spec.endpoint is None:
            raise ModelError(f"model '{spec.id}' has no cloud endpoint")
        return CloudModel(spec, self.client(spec.endpoint))


@hookimpl
def register_backends(register: Any) -> None:
    register(OpenAIBackend)
