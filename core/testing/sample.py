"""What a backend hands the conformance suite: a small model it loads in seconds, and inputs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aios.backend import GenerationRequest
from aios.config.schema import ModelSpec, OEMConfig
from aios.errors import AIOSError, GenerationError


@dataclass(frozen=True)
class Sample:
    """One model for the conformance suite (``aios.testing.BackendConformance``).

    ``request`` feeds text generators, ``inputs`` tensor models; the suite fills in the rest.
    """

    spec: ModelSpec
    path: Path | None  # the model file; None for backends that load no file (cloud)
    # Text generators: a request that yields at least three tokens if not cancelled.
    request: GenerationRequest = field(
        default_factory=lambda: GenerationRequest(prompt="Once upon a time", max_tokens=8)
    )
    # Tensor models: named inputs, and optionally the outputs they must give (allclose).
    inputs: Mapping[str, Any] | None = None
    expected: Mapping[str, Any] | None = None
    # Bad calls that must raise ``bad_error`` (an AIOSError); None: the suite's defaults, a
    # prompt twice the context window, or tensor inputs with nothing in them.
    bad_request: GenerationRequest | None = None
    bad_inputs: Sequence[Mapping[str, Any]] = ({},)
    bad_error: type[AIOSError] = GenerationError
    # Handed to ``Backend.configure`` before the probe (cloud endpoints, backend options).
    config: OEMConfig | None = None
    # Why the suite does not compare ``footprint_mb`` with a measured RSS for this backend.
    rss_note: str = (
        "an in-process RSS reading after other loads is not reliable to ±15%: compare "
        "footprint_mb with the peak RSS of a fresh process (see aios tests/test_footprint.py)"
    )

    def bad_generation(self) -> GenerationRequest:
        return self.bad_request or GenerationRequest(
            prompt="word " * (2 * self.spec.context_length), max_tokens=4
        )
