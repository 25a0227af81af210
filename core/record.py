"""The execution record: what ran, where, how long, and why each choice was made."""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from aios.types import Priority, Tier

Stage = Literal["input", "model", "backend", "tier", "device", "fallback", "load", "skill"]


class Decision(BaseModel):
    """One choice the orchestrator made (or a candidate it rejected) and the reason."""

    model_config = ConfigDict(extra="forbid")

    stage: Stage
    choice: str | None = Field(default=None, description="What was chosen or rejected.")
    accepted: bool = Field(default=True, description="False for a rejected candidate.")
    reason: str


class ExecutionRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(default_factory=lambda: uuid.uuid4().hex[:16])
    skill: str
    kind: Literal["skill", "agent"] = "skill"
    status: Literal["ok", "error", "cancelled", "explained"] = "ok"
    model: str | None = None
    backend: str | None = None
    tier: Tier | None = None
    fallback: str | None = Field(default=None, description="Set when a non-model path answered.")
    latency_ms: float = 0.0
    overhead_ms: float = Field(
        default=0.0, description="Time spent in aios itself: validation, choice, dispatch."
    )
    load_ms: float = Field(
        default=0.0, description="Backend and model load time paid by this request (first use)."
    )
    ttft_ms: float | None = Field(default=None, description="Time to first streamed token.")
    queue_ms: float = Field(
        default=0.0, description="Time spent waiting in model queues for a free slot."
    )
    priority: Priority = Priority.foreground
    app: str | None = Field(default=None, description="The calling app, when it said.")
    tokens_in: int = 0
    tokens_out: int = 0
    model_calls: int = 0
    cost_cny: float = 0.0
    cloud_equivalent_cny: float = Field(
        default=0.0, description="What this request would have cost had it run in the cloud."
    )
    reasons: list[Decision] = Field(default_factory=list)
    steps: list[ExecutionRecord] = Field(
        default_factory=list, description="Records of skills an agent called, in order."
    )
    cascade: dict[str, Any] | None = Field(
        default=None, description="Cascade mode: the device attempt, its confidence, escalation."
    )
    error: str | None = None
    started_at: float = Field(default_factory=time.time)

    def decide(
        self, stage: Stage, reason: str, choice: str | None = None, accepted: bool = True
    ) -> None:
        self.reasons.append(Decision(stage=stage, choice=choice, accepted=accepted, reason=reason))
