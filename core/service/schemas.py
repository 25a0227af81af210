"""Request and response bodies of the service's own endpoints (the OpenAPI spec's models)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from aios.config.schema import RoutingMode


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(Strict):
    code: str = Field(description="Stable machine-readable error code.")
    message: str
    hint: str | None = None
    problems: list[str] | None = Field(default=None, description="Every validation problem.")


class ErrorBody(Strict):
    error: ErrorDetail


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of a route: each status answers with an ``ErrorBody``."""
    return {status: {"model": ErrorBody} for status in statuses}


class Health(Strict):
    status: str = Field(description="'ok', or 'draining' while shutting down.")
    version: str
    uptime_s: float
    loaded_models: list[str]
    config_generation: int = Field(description="Bumped by each successful reload (SIGHUP).")
    inflight: int = Field(description="Requests being served now.")


class SkillInfo(Strict):
    name: str
    description: str
    kind: str
    sensitivity: str
    capabilities: list[str]
    data_classes: list[str]
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]


class SkillList(Strict):
    skills: list[SkillInfo]


class SkillRequest(Strict):
    input: dict[str, Any] = Field(description="The skill's input (see its input_schema).")
    model: str | None = Field(default=None, description="Run on this model of the matrix.")
    mode: RoutingMode | None = Field(default=None, description="Routing choice for this call.")
    sensitive: StrictBool = Field(
        default=False, description="Never send this request to the cloud (JSON true/false only)."
    )


class SkillResult(Strict):
    output: dict[str, Any]
    record: dict[str, Any] = Field(description="The execution record: what ran where, and why.")


class ModelStatus(Strict):
    id: str
    tier: str
    capabilities: list[str]
    resident: bool
    memory_mb: float = Field(description="Resident footprint when loaded, else the estimate.")
    pinned: bool
    active_calls: int
    waiting_calls: int


class ModelStatusList(Strict):
    budget_mb: float
    used_mb: float
    models: list[ModelStatus]


class LoadRequest(Strict):
    pin: StrictBool = Field(default=False, description="Keep it resident (never evicted).")


class PinRequest(Strict):
    pinned: StrictBool = Field(default=True, description="True pins, false releases the pin.")


class ModelAction(Strict):
    id: str
    resident: bool
    pinned: bool
    changed: bool = Field(description="False when there was nothing to do.")


class FeatureStatus(Strict):
    """Per model and skill, as AICore reports features: `available`, `downloadable` (size),
    `downloading` (progress), or `unavailable` (with the reason)."""

    profile: str
    models: dict[str, dict[str, Any]]
    skills: dict[str, dict[str, Any]]


class PullStarted(Strict):
    id: str
    state: str = Field(description="`downloading`, or `available` when already installed.")
    progress: dict[str, Any] | None = None
