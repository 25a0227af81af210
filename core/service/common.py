"""What every route shares: the calling app, running a skill off the event loop, SSE framing."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
import structlog
from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from aios.config.schema import AppSpec
from aios.errors import AIOSError, CancelledError
from aios.orchestrator import Result, StreamEvent
from aios.record import ExecutionRecord
from aios.routing.policy import RequestOptions
from aios.service.auth import check_skill, effective_priority
from aios.service.errors import ForbiddenError, NotFoundError, ShuttingDownError
from aios.service.runtime import Generation, Runtime
from aios.skill import Skill

# Declares the bearer scheme in the OpenAPI spec; the middleware has already checked it.
bearer = HTTPBearer(auto_error=False, description="An app token (`aios apps add NAME`).")
_END = object()


@dataclass
class Caller:
    app: AppSpec
    gen: Generation
    cancel: threading.Event
    runtime: Runtime
    state: Any  # the request's state, where routes leave the skill and record for the audit

    def skill(self, name: str) -> type[Skill]:
        """The skill class, if this app may call it (404 unknown, 403 not allowed)."""
        cls = self.gen.orchestrator.skill_class(name)
        self.state.aios_skill = name  # only known skills become metric labels
        check_skill(self.app, cls)
        return cls

    def model(self, requested: str | None) -> str | None:
        """The model a skill request names, if it is in the matrix (404 otherwise)."""
        if requested is not None:
            try:
                self.gen.config.model(requested)
            except KeyError:
                raise NotFoundError(
                    f"model '{requested}' is not in the model matrix",
                    hint="GET /v1/models lists them; leave 'model' out to let aios choose",
                ) from None
        return requested

    def require_operator(self) -> None:
        """Model control (load, unload, pin) and metrics are for apps allowed every skill."""
        if "*" not in self.app.skills:
            raise ForbiddenError(
                f"app '{self.app.id}' may not control models or read metrics",
                hint='that needs skills = ["*"]',
            )

    def options(self, request: Request, **kwargs: Any) -> RequestOptions:
        priority = effective_priority(self.app, request.headers.get("x-aios-priority"))
        return RequestOptions(app=self.app.id, priority=priority, **kwargs)

    def done(self, result: Result) -> Result:
        self.state.aios_record = result.record
        return result

    def translate(self, exc: AIOSError) -> AIOSError:
        """A cancellation caused by shutdown says so (503), not that the client left."""
        if isinstance(exc, CancelledError) and self.runtime.draining:
            return ShuttingDownError(
                "the service shut down before this request finished (its grace period ran out)",
                retry_after=5,
            )
        return exc


def caller(
    request: Request, _creds: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]
) -> Caller:
    s = request.state
    return Caller(s.aios_app, s.aios_gen, s.aios_cancel, s.aios_runtime, s)


async def invoke(caller: Caller, skill: str, inp: Any, opts: RequestOptions) -> Result:
    orch = caller.gen.orchestrator
    try:
        result = await run_in_threadpool(
            orch.invoke, skill, inp, options=opts, cancel=caller.cancel
        )
    except AIOSError as exc:
        raise caller.translate(exc) from None
    return caller.done(result)


async def stream(
    caller: Caller, request: Request, skill: str, inp: Any, opts: RequestOptions
) -> AsyncIterator[StreamEvent | AIOSError]:
    """The skill's stream events from a worker thread; an exception item ends it.

    A client that goes away sets the request's cancel event, so generation stops.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    orch = caller.gen.orchestrator

    def put(item: Any) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the loop is gone (shutdown): nobody is listening
            caller.cancel.set()

    def produce() -> None:
        try:
            for event in orch.stream(
                skill,
                inp,
                options=opts,
                cancel=caller.cancel,
                on_routed=lambda record: put(StreamEvent(routed=record)),
            ):
                put(event)
        except AIOSError as exc:
            put(caller.translate(exc))
        except BaseException as exc:  # the orchestrator wraps plugin bugs; this is ours
            put(exc)
        finally:
            put(_END)

    thread = threading.Thread(target=produce, name=f"aios-stream-{skill}", daemon=True)
    thread.start()
    finished = False
    try:
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), 0.2)
            except TimeoutError:
                if await request.is_disconnected():
                    caller.cancel.set()
                    return
                continue
            if item is _END:
                finished = True
                return
            if isinstance(item, StreamEvent):
                if item.result is not None:
                    caller.done(item.result)
                elif item.routed is not None:
                    # Audited even if the client leaves before the end: the worker has set
                    # its final status by the time the audit reads it (joined below).
                    caller.state.aios_record = item.routed
            elif isinstance(item, BaseException):
                caller.state.aios_error = getattr(item, "code", "internal_error")
            yield item
    finally:
        if not finished:
            caller.cancel.set()
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(thread.join, 30.0)


def sse(event: str | None, data: Any) -> str:
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    head = f"event: {event}\n" if event else ""
    return head + "".join(f"data: {line}\n" for line in text.split("\n")) + "\n"


SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def error_event(item: BaseException) -> dict[str, Any]:
    """The JSON error for an exception that ended a stream (headers are already sent)."""
    from aios.service.errors import body_of, internal_error, status_of

    if isinstance(item, AIOSError):
        body = body_of(item)
        body["error"]["status"] = status_of(item)
        return body
    rid, body = internal_error()
    structlog.get_logger("aios.service").error("service.stream_failed", error_id=rid, exc_info=item)
    body["error"]["status"] = 500
    return body


async def started(
    items: AsyncIterator[StreamEvent | BaseException],
) -> AsyncIterator[StreamEvent | BaseException]:
    """The stream, once its first item is there; a failure before any output raises, so the
    client gets a proper HTTP status rather than an error event in a 200 stream."""
    try:
        first = await items.__anext__()
    except StopAsyncIteration:
        first = None
    if isinstance(first, BaseException):
        await items.aclose()  # type: ignore[attr-defined]
        raise first

    async def chained() -> AsyncIterator[StreamEvent | BaseException]:
        try:
            if first is not None:
                yield first
            async for item in items:
                yield item
        finally:
            await items.aclose()  # type: ignore[attr-defined]

    return chained()


# The calling app, as a route parameter: `who: Who`.
Who = Annotated[Caller, Depends(caller)]


def routed_summary(record: ExecutionRecord) -> dict[str, Any]:
    """Where a streamed request runs, sent before its first text. Only fields the routing set:
    the worker thread keeps filling the record in while this is read."""
    return {
        "request_id": record.request_id,
        "model": record.model,
        "backend": record.backend,
        "tier": record.tier.value if record.tier is not None else None,
    }
