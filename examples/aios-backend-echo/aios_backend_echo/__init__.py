"""An example third-party aios backend: a pure-Python text generator that echoes its prompt.

It shows the backend contract end to end (probe, load, footprint, stream with cancel, close,
clear errors) without an inference runtime, and how its author runs the aios conformance suite
on it (tests/test_conformance.py). Its "model" is a GGUF file header with no tensors: aios model
formats are a closed set, and echo reads only the header to tell a model from a wrong file.
"""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aios import (
    Availability,
    Backend,
    Done,
    GenerationError,
    GenerationRequest,
    ModelError,
    TextGenerator,
    Token,
    hookimpl,
)
from aios.backend import CancelSignal
from aios.config.schema import ModelFormat, ModelSpec

HEADER = struct.Struct("<4sIQQ")  # magic, version, tensor count, metadata count
MIB = 1 << 20


def write_model(path: Path) -> Path:
    """Write an echo model: a GGUF v3 header with no tensors and no metadata."""
    path.write_bytes(HEADER.pack(b"GGUF", 3, 0, 0))
    return path


class EchoModel(TextGenerator):
    def __init__(self, spec: ModelSpec, backend_name: str) -> None:
        super().__init__(spec, backend_name)
        self._closed = threading.Event()

    def count_tokens(self, text: str) -> int:
        self._check_open()
        return len(text.split())

    def stream(
        self, request: GenerationRequest, cancel: CancelSignal | None = None
    ) -> Iterator[Token | Done]:
        self._check_open()
        t0 = time.perf_counter()
        text = request.prompt or " ".join(m.get("content", "") for m in request.messages or ())
        words = text.split()
        if len(words) + 1 > self.spec.context_length:
            raise GenerationError(
                f"prompt of {len(words)} tokens does not fit the context window of "
                f"{self.spec.context_length} tokens of model '{self.spec.id}'"
            )
        out, finish = 0, "stop"
        for word in words:
            if cancel is not None and cancel.is_set():
                finish = "cancelled"
                break
            if out == request.max_tokens:
                finish = "length"
                break
            out += 1
            yield Token(" " + word)
        yield Done(
            tokens_in=len(words),
            tokens_out=out,
            finish_reason=finish,  # type: ignore[arg-type]
            backend_ms=(time.perf_counter() - t0) * 1000,
        )

    def _check_open(self) -> None:
        if self._closed.is_set():
            raise GenerationError(f"model '{self.spec.id}' is closed")

    def close(self) -> None:
        self._closed.set()


class EchoBackend(Backend):
    name = "echo"
    description = "Example pure-Python backend: echoes the prompt back, word by word."
    formats = frozenset({ModelFormat.gguf})

    def probe(self) -> Availability:
        return Availability(True, "pure Python, nothing to install")

    def footprint_mb(self, spec: ModelSpec, path: Path) -> float | None:
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise ModelError(f"model '{spec.id}': cannot read {path} ({exc.strerror})") from None
        return size / MIB + 0.1  # the header, plus the Python objects of one model

    def load(self, spec: ModelSpec, path: Path | None) -> EchoModel:
        if path is None:
            raise ModelError(f"model '{spec.id}' has no file for the echo backend")
        try:
            with path.open("rb") as f:
                head = f.read(HEADER.size)
        except OSError as exc:
            raise ModelError(f"model '{spec.id}': cannot read {path} ({exc.strerror})") from None
        if len(head) < HEADER.size or head[:4] != b"GGUF":
            raise ModelError(f"model '{spec.id}': {path} is not an echo model (no GGUF header)")
        return EchoModel(spec, self.name)

    @classmethod
    def conformance_sample(cls, workdir: Path) -> Any:
        from aios.testing import Sample

        path = write_model(workdir / "echo.gguf")
        spec = ModelSpec.model_validate(
            {
                "id": "echo-tiny",
                "capabilities": ["text-generation"],
                "parameters_b": 0.000001,
                "quantization": "fp32",
                "format": "gguf",
                "tier": "device",
                "memory_mb": 1,
                "context_length": 128,
                "backends": [cls.name],
                "prompt_format": "base",
                "source": {"path": str(path)},
            }
        )
        return Sample(
            spec=spec,
            path=path,
            request=GenerationRequest(prompt="one two three four five six seven", max_tokens=5),
            rss_note="pure Python: the model holds no memory worth measuring",
        )


@hookimpl
def register_backends(register: Any) -> None:
    register(EchoBackend)
