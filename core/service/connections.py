"""Connection guards uvicorn lacks: a cap on open connections and a deadline for headers.

uvicorn accepts every connection and waits forever for a request line, so apps that open
connections and send nothing (or drip a header a byte at a time) hold a file descriptor each
until the service can no longer accept anyone, nor open a model or its ledger. The service is a
system component; one misbehaving app must not take it away from the others. So:

- past ``max_connections`` open connections a new one gets a 503 and is closed at once;
- a connection must deliver a whole request head within ``header_timeout_s`` of connecting (or
  of its first byte after a keep-alive pause), else it gets a 408 and is closed;
- an idle keep-alive connection is closed after ``keep_alive_s`` (uvicorn's own timer).

Bodies are guarded separately (``body_timeout_s`` in the app), as are request slots (quotas).
"""

from __future__ import annotations

import asyncio
import json
import resource
from http import HTTPStatus
from typing import Any

import h11
import structlog
from uvicorn.protocols.http.h11_impl import H11Protocol

from aios.service.errors import (
    RequestTimeoutError,
    ServiceError,
    TooManyConnectionsError,
    body_of,
    headers_of,
    status_of,
)

log = structlog.get_logger("aios.service")

# File descriptors the service needs besides client connections: models, ledger, index,
# logs, the two listening sockets, the cloud client's pool. Generous on purpose.
RESERVED_FDS = 64


def _raw_response(exc: ServiceError) -> bytes:
    """The service's usual error reply, written straight to a connection that has no request
    (so no ASGI app) to answer through."""
    status = status_of(exc)
    body = json.dumps(body_of(exc)).encode()
    headers = {
        "content-type": "application/json",
        "content-length": str(len(body)),
        "connection": "close",
        **headers_of(exc),
    }
    head = f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in headers.items()
    )
    return head.encode("ascii") + b"\r\n" + body


class _RateLimitedLog:
    """One warning per burst: a flood of refusals must not become a flood of log lines."""

    def __init__(self, event: str, every_s: float = 10.0) -> None:
        self.event = event
        self.every_s = every_s
        self._last = -float("inf")
        self._suppressed = 0

    def __call__(self, loop: asyncio.AbstractEventLoop, **fields: Any) -> None:
        now = loop.time()
        if now - self._last < self.every_s:
            self._suppressed += 1
            return
        log.warning(self.event, suppressed_since_last=self._suppressed, **fields)
        self._last = now
        self._suppressed = 0


def guarded_protocol(*, max_connections: int, header_timeout_s: float) -> type[asyncio.Protocol]:
    """An h11 protocol class for uvicorn's ``Config(http=...)`` with the guards above."""
    refused_log = _RateLimitedLog("service.connection_refused")
    timeout_log = _RateLimitedLog("service.header_timeout")

    class GuardedH11Protocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                refused_log(
                    self.loop,
                    open_connections=len(self.connections) - 1,
                    max_connections=max_connections,
                )
                refusal = TooManyConnectionsError(
                    f"the service has {max_connections} connections open",
                    hint="close idle connections; raise [service] max_connections",
                    retry_after=1,
                )
                transport.write(_raw_response(refusal))
                transport.close()
                return
            self._await_head()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._await_head()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_head_timer()
            super().connection_lost(exc)

        def _await_head(self) -> None:
            # h11 keeps the peer IDLE until a whole request head has arrived.
            waiting = self.conn.their_state is h11.IDLE and not self.transport.is_closing()
            if not waiting:
                self._stop_head_timer()
            elif self._header_timer is None and self.timeout_keep_alive_task is None:
                # With the keep-alive timer armed the connection is between requests and that
                # timer governs; the head deadline starts with the next request's first byte.
                self._header_timer = self.loop.call_later(header_timeout_s, self._head_late)

        def _stop_head_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _head_late(self) -> None:
            self._header_timer = None
            if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
                return
            timeout_log(self.loop, header_timeout_s=header_timeout_s)
            late = RequestTimeoutError(
                f"no complete request head within {header_timeout_s:g} s",
                hint="[service] header_timeout_s",
            )
            self.transport.write(_raw_response(late))
            self.transport.close()

    return GuardedH11Protocol


def ensure_fd_room(max_connections: int) -> int:
    """Raise the soft open-file limit so ``max_connections`` fit beside the service's own files.

    Returns the soft limit in force. Raises ``ValueError`` naming both numbers when even the
    hard limit is too small, so the OEM lowers the cap instead of finding out under load.
    """
    need = max_connections + RESERVED_FDS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            raise ValueError(
                f"[service] max_connections = {max_connections} needs {need} open files but "
                f"the process may open at most {hard}"
            )
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
        soft = need
    return int(soft)
