"""One structlog event ``aios.audit`` per call: who called what, where it ran, how it ended."""

from __future__ import annotations

from typing import Any

import structlog

from aios.record import ExecutionRecord

log = structlog.get_logger("aios.audit")


def audit(
    *,
    app: str | None,
    endpoint: str,
    status: int,
    latency_ms: float,
    skill: str | None = None,
    record: ExecutionRecord | None = None,
    error: str | None = None,
    **extra: Any,
) -> None:
    log.info(
        "aios.audit",
        app=app,
        endpoint=endpoint,
        skill=skill,
        model=record.model if record else None,
        tier=record.tier.value if record and record.tier else None,
        request_id=record.request_id if record else None,
        status=status,
        latency_ms=round(latency_ms, 1),
        error=error,
        **extra,
    )
