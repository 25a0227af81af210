"""`/v1/skills`: list skills with their contracts, invoke one, or stream it over SSE."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from aios.orchestrator import JSONInput
from aios.service.common import (
    SSE_HEADERS,
    Who,
    error_event,
    invoke,
    routed_summary,
    sse,
    started,
    stream,
)
from aios.service.schemas import SkillInfo, SkillList, SkillRequest, SkillResult, error_responses

router = APIRouter(prefix="/v1/skills", tags=["skills"])
ERRORS = error_responses(401, 403, 404, 408, 413, 422, 429, 499, 503)


@router.get("", response_model=SkillList, summary="Skills this app may call, with schemas")
def list_skills(who: Who) -> SkillList:
    orch = who.gen.orchestrator
    rows = []
    for name in sorted(orch.skill_names()):
        cls = orch.plugins.skills[name]
        if "*" not in who.app.skills and name not in who.app.skills:
            continue
        rows.append(
            SkillInfo(
                name=name,
                description=cls.description,
                kind=cls.kind,
                sensitivity=cls.sensitivity.value,
                capabilities=sorted(c.value for c in cls.capabilities),
                data_classes=sorted(d.value for d in cls.data_classes),
                input_schema=cls.Input.model_json_schema(),
                output_schema=cls.Output.model_json_schema(),
            )
        )
    return SkillList(skills=rows)


@router.post(
    "/{name}", response_model=SkillResult, responses=ERRORS, summary="Run a skill to completion"
)
async def run_skill(name: str, body: SkillRequest, request: Request, who: Who) -> SkillResult:
    who.skill(name)
    opts = who.options(
        request, model=who.model(body.model), mode=body.mode, sensitive=body.sensitive
    )
    result = await invoke(who, name, JSONInput(body.input), opts)
    return SkillResult(**result.to_dict())


@router.post(
    "/{name}/stream",
    responses={200: {"content": {"text/event-stream": {}}}, **ERRORS},
    summary="Run a skill, streaming Server-Sent Events",
    description="`event: start` comes first once the request is routed, with `{request_id, "
    "model, backend, tier}`; "
    '`event: delta` carries `{"text"}` chunks; an agent also sends `event: step` '
    "as each step starts and ends (`{step, of, skill, status, tier, model, latency_ms, error}`); "
    "then `event: result` with `{output, record}`, or `event: error` with "
    "`{error: {code, message, status}}`. Closing the connection cancels the request (an "
    "agent's whole plan).",
)
async def stream_skill(
    name: str, body: SkillRequest, request: Request, who: Who
) -> StreamingResponse:
    who.skill(name)
    opts = who.options(
        request, model=who.model(body.model), mode=body.mode, sensitive=body.sensitive
    )

    items = await started(stream(who, request, name, JSONInput(body.input), opts))

    async def events() -> AsyncIterator[str]:
        async for item in items:
            if isinstance(item, BaseException):
                yield sse("error", error_event(item))
            elif item.delta is not None:
                yield sse("delta", {"text": item.delta})
            elif item.step is not None:
                yield sse("step", item.step)
            elif item.routed is not None:
                yield sse("start", routed_summary(item.routed))
            elif item.result is not None:
                yield sse("result", item.result.to_dict())

    return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)
