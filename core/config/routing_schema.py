"""Config sections of the cloud tier and the device/cloud routing policy."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field

from aios.config.fields import (
    ENV_NAME_PATTERN,
    Name,
    Strict,
)
from aios.types import DataClass


class CloudEndpoint(Strict):
    name: Name = Field(description="Endpoint name that cloud models refer to.")
    base_url: str = Field(
        pattern=r"^https?://[^\s]+$",
        max_length=500,
        description="Base URL of an OpenAI-compatible API, e.g. 'https://llm.example.com/v1'.",
    )
    api_key_env: str | None = Field(
        default=None,
        pattern=ENV_NAME_PATTERN,
        description="Environment variable that holds the API key; keys never live in the config.",
    )
    connect_timeout_s: float = Field(default=3.0, gt=0, le=60, description="Connect deadline.")
    read_timeout_s: float = Field(
        default=30.0, gt=0, le=600, description="Longest wait for the next bytes of a response."
    )
    deadline_s: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="Whole-request deadline, retries included; past it the call fails typed.",
    )
    max_retries: int = Field(
        default=2, ge=0, le=10, description="Retries of idempotent failures, with backoff."
    )
    backoff_s: float = Field(
        default=0.25, ge=0, le=30, description="First retry delay; doubles per retry, plus jitter."
    )
    breaker_failures: int = Field(
        default=5, ge=1, le=1000, description="Consecutive failures that open the circuit breaker."
    )
    breaker_cooldown_s: float = Field(
        default=30.0, gt=0, le=3600, description="How long an open breaker refuses calls."
    )
    cost_per_call_cny: float = Field(
        default=0.012, ge=0, le=100, description="Accounted cost of one call, in CNY."
    )
    price_per_1k_input_cny: float = Field(
        default=0.0, ge=0, le=100, description="Accounted cost per 1,000 prompt tokens, in CNY."
    )
    price_per_1k_output_cny: float = Field(
        default=0.0, ge=0, le=100, description="Accounted cost per 1,000 generated tokens, in CNY."
    )
    structured_output: Literal["json_schema", "json_object", "grammar", "none"] = Field(
        default="json_schema",
        description="How this endpoint takes a JSON schema to constrain its output: "
        "'json_schema' = OpenAI/vLLM standard response_format "
        '{"type": "json_schema", "json_schema": {"name", "schema", "strict": true}}; '
        "'json_object' = llama.cpp server / Anyscale style response_format "
        '{"type": "json_object", "schema": ...} (chat only; completions send a grammar '
        "when llama-cpp-python is installed here, else nothing); "
        "'grammar' = a GBNF grammar in a `grammar` field (llama.cpp server), converted on "
        "this device by llama-cpp-python; "
        "'none' = the endpoint cannot constrain: nothing is sent and the caller validates.",
    )

    def call_cost(self, tokens_in: int, tokens_out: int) -> float:
        return (
            self.cost_per_call_cny
            + tokens_in / 1000 * self.price_per_1k_input_cny
            + tokens_out / 1000 * self.price_per_1k_output_cny
        )


class CloudConfig(Strict):
    endpoints: list[CloudEndpoint] = Field(
        default_factory=list, max_length=32, description="OpenAI-compatible cloud endpoints."
    )


class RoutingMode(StrEnum):
    local_only = "local_only"
    prefer_local = "prefer_local"
    prefer_cloud = "prefer_cloud"


class RoutingPolicy(Strict):
    mode: RoutingMode = Field(
        default=RoutingMode.prefer_local,
        description="Default user choice: local only, prefer local, or prefer cloud.",
    )
    private_data_classes: list[DataClass] = Field(
        default_factory=lambda: [
            DataClass.photos,
            DataClass.contacts,
            DataClass.messages,
            DataClass.health,
            DataClass.location,
        ],
        description="Data classes that never leave the device.",
    )
    daily_cloud_budget_cny: float = Field(
        default=0.5, ge=0, le=10_000, description="Cloud spend allowed per device per day."
    )
    cascade: bool = Field(
        default=False, description="Answer on device first; escalate when confidence is low."
    )
    cascade_min_logprob: float = Field(
        default=-1.5,
        ge=-20,
        le=0,
        description="Mean token log-probability below which a cascade escalates to the cloud.",
    )
    difficulty_threshold: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description=(
            "Difficulty score at or above which the cloud is preferred. A router's score is the "
            "share of its labeled prompts ranked below the prompt, so a threshold t keeps about "
            "t of such traffic on device; `aios router eval` prints the threshold of each point."
        ),
    )
    difficulty_router: str | None = Field(
        default=None, max_length=4096, description="Path to a fitted difficulty-router artifact."
    )
