"""Every failure the service answers is a JSON body ``{"error": {"code", "message", "hint"?}}``.

``AIOSError`` subclasses map to HTTP statuses by their code; the service's own refusals
(401, 403, 413, 429, ...) are ``ServiceError`` subclasses carrying their status. Nothing else
(no traceback) ever reaches a client: unexpected exceptions become 500 with a request id.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from fastapi.responses import JSONResponse

from aios.errors import AIOSError

# Status by error code; codes not listed are server-side failures (500).
STATUS_BY_CODE: dict[str, int] = {
    "invalid_input": 422,
    "unknown_skill": 404,
    "no_model_available": 503,
    "model_error": 503,  # the device lacks a usable model file: not the client's fault, nor a bug
    "context_length_exceeded": 400,
    "backend_unavailable": 503,
    "cancelled": 499,  # the client went away (nginx's "client closed request")
    "queue_full": 503,
    "queue_timeout": 503,
    "memory_budget": 507,
    "policy_refused": 422,
    "permission_denied": 403,
    "plan_invalid": 422,
    "cloud_unavailable": 502,
    "cloud_bad_response": 502,
    "cloud_stream_cut": 502,
    "cloud_timeout": 504,
    "cloud_error": 502,
}
# Refusals worth retrying after a moment: the client gets a Retry-After.
RETRY_AFTER_S: dict[str, int] = {"queue_full": 1, "queue_timeout": 5, "no_model_available": 5}


class ServiceError(AIOSError):
    """A refusal by the service itself, with its HTTP status."""

    status = 400

    def __init__(
        self, message: str, *, hint: str | None = None, retry_after: int | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


class BadRequestError(ServiceError):
    code = "bad_request"
    status = 400


class UnauthorizedError(ServiceError):
    code = "unauthorized"
    status = 401


class ForbiddenError(ServiceError):
    code = "forbidden"
    status = 403


class NotFoundError(ServiceError):
    code = "not_found"
    status = 404


class RequestTimeoutError(ServiceError):
    code = "request_timeout"
    status = 408


class ConflictError(ServiceError):
    code = "conflict"
    status = 409


class PayloadTooLargeError(ServiceError):
    code = "payload_too_large"
    status = 413


class RateLimitedError(ServiceError):
    code = "rate_limited"
    status = 429


class TooManyConnectionsError(ServiceError):
    code = "too_many_connections"
    status = 503


class ShuttingDownError(ServiceError):
    code = "shutting_down"
    status = 503


class SafeJSONResponse(JSONResponse):
    """JSON that always renders: a lone surrogate (``"\\ud800"`` in a request, echoed back in an
    error message) cannot be encoded as UTF-8, and Starlette's renderer raised on it, turning
    a client's mistake into a 500. Such text is sent \\u-escaped instead."""

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return json.dumps(content, ensure_ascii=True, allow_nan=False).encode("ascii")


def status_of(exc: AIOSError) -> int:
    if isinstance(exc, ServiceError):
        return exc.status
    return STATUS_BY_CODE.get(exc.code, 500)


def body_of(exc: AIOSError) -> dict[str, Any]:
    err: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if exc.hint:
        err["hint"] = exc.hint
    problems = getattr(exc, "problems", None)
    if problems:
        err["problems"] = list(problems)
    return {"error": err}


def headers_of(exc: AIOSError) -> dict[str, str]:
    after = getattr(exc, "retry_after", None) or RETRY_AFTER_S.get(exc.code)
    return {"Retry-After": str(after)} if after else {}


def internal_error() -> tuple[str, dict[str, Any]]:
    """A fresh request id and the body that tells the client only that id."""
    rid = uuid.uuid4().hex[:16]
    return rid, {
        "error": {
            "code": "internal_error",
            "message": f"internal error (request id {rid})",
            "hint": "the service log has the details under this request id",
        }
    }
