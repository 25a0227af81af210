"""The service's ASGI app: ``create_app(orchestrator, settings)``; no global app at import.

A pure ASGI middleware guards every endpoint but ``/health``: body size (413, checked on the
Content-Length and while the body streams in), a body that stalls (408), shutdown (503), the
app's bearer token (401), its quota (429 with Retry-After); it also holds the orchestrator
generation for the request, cancels the request when its connection ends, and writes the audit
event and HTTP metrics.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aios.config.loader import format_loc
from aios.config.schema import ServiceSettings
from aios.errors import AIOSError
from aios.orchestrator import Orchestrator
from aios.service import routes_models, routes_openai, routes_skills
from aios.service.audit import audit
from aios.service.common import Who
from aios.service.errors import (
    BadRequestError,
    PayloadTooLargeError,
    RequestTimeoutError,
    SafeJSONResponse,
    body_of,
    headers_of,
    internal_error,
    status_of,
)
from aios.service.metrics import CONTENT_TYPE, Metrics
from aios.service.quotas import Quotas
from aios.service.runtime import Runtime
from aios.service.schemas import Health

log = structlog.get_logger("aios.service")
PUBLIC_PATHS = frozenset({"/health"})


def _version() -> str:
    try:
        return version("aios")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0+unknown"


@dataclass
class Service:
    runtime: Runtime
    settings: ServiceSettings
    quotas: Quotas
    metrics: Metrics


def error_response(exc: AIOSError) -> SafeJSONResponse:
    return SafeJSONResponse(body_of(exc), status_code=status_of(exc), headers=headers_of(exc))


class ServiceMiddleware:
    def __init__(self, app: ASGIApp, service: Service) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        svc = self.service
        t0 = time.perf_counter()
        status = 0
        app_id: str | None = None
        state: dict[str, Any] = scope.setdefault("state", {})
        limit = svc.settings.max_body_bytes
        received = 0
        body_done = False

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        async def limited(message_source: Receive = receive) -> Message:
            nonlocal received, body_done
            if body_done:  # later receives wait for the disconnect: no deadline on those
                return await message_source()
            try:
                message = await asyncio.wait_for(message_source(), svc.settings.body_timeout_s)
            except TimeoutError:
                state["aios_body_error"] = RequestTimeoutError(
                    f"no request body arrived for {svc.settings.body_timeout_s:g} s",
                    hint="[service] body_timeout_s",
                )
                raise state["aios_body_error"] from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    state["aios_body_error"] = PayloadTooLargeError(
                        f"request body is over {limit} bytes"
                    )
                    raise state["aios_body_error"]
                body_done = not message.get("more_body", False)
            return message

        try:
            try:
                declared = int(_header(scope, b"content-length") or 0)
            except ValueError:
                raise BadRequestError("Content-Length is not a number") from None
            if declared > limit:
                raise PayloadTooLargeError(
                    f"request body of {declared} bytes is over the limit of {limit}",
                    hint="[service] max_body_bytes",
                )
            with svc.runtime.request() as (gen, cancel):
                app = gen.apps.authenticate(_header(scope, b"authorization"))
                app_id = app.id
                svc.quotas.admit(app)
                state.update(aios_app=app, aios_gen=gen, aios_cancel=cancel)
                state["aios_runtime"] = svc.runtime
                try:
                    await self.app(scope, limited, send_status)
                finally:
                    cancel.set()  # the response is over (or the client left): stop the work
                    svc.quotas.release(app)
        except AIOSError as exc:
            if status:
                raise
            state["aios_error"] = exc.code
            await error_response(exc)(scope, receive, send_status)
        finally:
            self._account(scope, state, app_id, status or 500, t0)

    def _account(
        self, scope: Scope, state: dict[str, Any], app: str | None, status: int, t0: float
    ) -> None:
        route = scope.get("route")
        endpoint = getattr(route, "path", None) or scope["path"]
        record = state.get("aios_record")
        skill = state.get("aios_skill")
        m = self.service.metrics
        m.http.labels(app or "-", endpoint, str(status)).inc()
        error = state.get("aios_error")
        # A stream's HTTP status is sent before its end: how it ended is the record's status
        # (or the error event it ended with), not the 200.
        if record is not None and record.status != "explained":
            outcome = record.status
        elif status == 499:
            outcome = "cancelled"
        else:
            outcome = "error" if status >= 400 or error else "ok"
        if skill is not None:
            m.observe(record, app or "-", skill, outcome)
        audit(
            app=app,
            endpoint=f"{scope['method']} {endpoint}",
            skill=skill,
            record=record,
            status=status,
            outcome=outcome,
            latency_ms=(time.perf_counter() - t0) * 1000,
            error=error,
        )


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AIOSError)
    async def aios_error(request: Request, exc: AIOSError) -> SafeJSONResponse:
        request.state.aios_error = exc.code
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> SafeJSONResponse:
        errors = list(exc.errors())
        request.state.aios_error = "invalid_request"
        if any(e.get("type") == "json_invalid" for e in errors):
            return error_response(
                BadRequestError("request body is not valid JSON", hint="send a JSON object")
            )
        problems = []
        for e in errors:
            loc = tuple(e.get("loc", ()))
            loc = loc[1:] if loc[:1] == ("body",) else loc
            problems.append(f"{format_loc(loc) or 'body'}: {e.get('msg')}")
        err: dict[str, Any] = {
            "code": "invalid_request",
            "message": "request does not match the endpoint's schema: " + "; ".join(problems),
            "problems": problems,
        }
        if "json" not in request.headers.get("content-type", ""):
            err["hint"] = "send the body as JSON with 'Content-Type: application/json'"
        body = {"error": err}
        return SafeJSONResponse(body, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> SafeJSONResponse:
        body_error = getattr(request.state, "aios_body_error", None)
        if body_error is not None:  # FastAPI turned our refusal to read the body into a 400
            request.state.aios_error = body_error.code
            return error_response(body_error)
        codes = {404: "not_found", 405: "method_not_allowed", 400: "bad_request"}
        request.state.aios_error = codes.get(exc.status_code, "http_error")
        body = {
            "error": {"code": codes.get(exc.status_code, "http_error"), "message": str(exc.detail)}
        }
        return SafeJSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> SafeJSONResponse:
        rid, body = internal_error()
        request.state.aios_error = f"internal_error {rid}"
        log.error("service.internal_error", error_id=rid, path=request.url.path, exc_info=exc)
        return SafeJSONResponse(body, status_code=500)


def create_app(
    orchestrator: Orchestrator,
    settings: ServiceSettings | None = None,
    *,
    runtime: Runtime | None = None,
) -> FastAPI:
    """The service on ``orchestrator`` (or on ``runtime``, which reloads swap into)."""
    runtime = runtime or Runtime.build(orchestrator)
    settings = settings or orchestrator.config.service
    holder: dict[str, Runtime] = {"runtime": runtime}
    service = Service(runtime, settings, Quotas(), Metrics(lambda: holder["runtime"]))

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        runtime.close()

    app = FastAPI(
        title="aios service",
        version=_version(),
        description=(
            "The on-device AI system service: apps call skills and OpenAI-compatible endpoints "
            "with their app token (`Authorization: Bearer ...`); the service owns the models, "
            "memory, permissions and quotas. Every error is `{error: {code, message, hint?}}`."
        ),
        lifespan=lifespan,
        default_response_class=SafeJSONResponse,
    )
    app.state.aios = service
    app.add_middleware(ServiceMiddleware, service=service)
    _install_error_handlers(app)

    @app.head("/health", include_in_schema=False)  # what `curl -I` and probers send
    def health_head() -> Response:
        return Response(status_code=200)

    @app.get("/health", response_model=Health, tags=["service"], summary="Liveness (no auth)")
    def health() -> Health:
        gen = runtime.current
        return Health(
            status="draining" if runtime.draining else "ok",
            version=_version(),
            uptime_s=round(time.time() - runtime.started, 3),
            loaded_models=sorted({k[0] for k in list(gen.orchestrator.governor.resident)}),
            config_generation=gen.number,
            inflight=runtime.inflight(),
        )

    @app.get(
        "/metrics",
        tags=["service"],
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE: {}}}},
    )
    def metrics(who: Who) -> Response:
        who.require_operator()  # per-app counts and cloud spend: not for every app to read
        return Response(service.metrics.render(), media_type=CONTENT_TYPE)

    app.include_router(routes_skills.router)
    app.include_router(routes_openai.router)
    app.include_router(routes_models.router)
    return app
