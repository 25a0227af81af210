"""HTTP client for one OpenAI-compatible endpoint: deadlines, bounded retries, breaker, SSE.

Retries cover failures that provably happened before the server did any work for us (connect
errors, 429, 502, 503, 504) and, for streams, only before the first event arrived; anything
later fails typed rather than being repeated or half-returned.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx
import structlog

from aios.backend import CancelSignal
from aios.cloud.breaker import CircuitBreaker
from aios.config.schema import CloudEndpoint
from aios.errors import (
    CancelledError,
    CloudError,
    CloudResponseError,
    CloudStreamCutError,
    CloudTimeoutError,
    CloudUnavailableError,
)

_T = TypeVar("_T")

log = structlog.get_logger("aios.cloud")

RETRYABLE_STATUS = frozenset({429, 502, 503, 504})


class _Retryable(Exception):
    def __init__(self, error: CloudError, retry_after: float | None = None) -> None:
        self.error = error
        self.retry_after = retry_after


class EndpointClient:
    def __init__(
        self, endpoint: CloudEndpoint, breaker: CircuitBreaker, seed: int | None = None
    ) -> None:
        self.endpoint = endpoint
        self.breaker = breaker
        self._rng = random.Random(seed)
        self._http = httpx.Client(base_url=endpoint.base_url.rstrip("/") + "/")
        self.last_retries = 0

    def close(self) -> None:
        self._http.close()

    # -- plumbing -------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        env = self.endpoint.api_key_env
        if env:
            key = os.environ.get(env)
            if not key:
                raise CloudUnavailableError(
                    f"endpoint '{self.endpoint.name}': API key variable {env} is not set"
                )
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _timeout(self, deadline: float) -> httpx.Timeout:
        left = deadline - time.monotonic()
        if left <= 0:
            raise CloudTimeoutError(
                f"endpoint '{self.endpoint.name}': "
                f"deadline of {self.endpoint.deadline_s:g} s passed"
            )
        ep = self.endpoint
        return httpx.Timeout(
            connect=min(ep.connect_timeout_s, left),
            read=min(ep.read_timeout_s, left),
            write=min(ep.read_timeout_s, left),
            pool=min(ep.connect_timeout_s, left),
        )

    def _status_error(self, resp: httpx.Response) -> _Retryable | CloudResponseError:
        try:
            detail = resp.read().decode("utf-8", "replace")[:300]
        except httpx.HTTPError:
            detail = ""
        err = CloudResponseError(
            f"endpoint '{self.endpoint.name}' answered HTTP {resp.status_code}: {detail}".rstrip()
        )
        if resp.status_code in RETRYABLE_STATUS:
            retry_after = resp.headers.get("Retry-After")
            try:
                after = float(retry_after) if retry_after else None
            except ValueError:
                after = None
            return _Retryable(err, after)
        return err

    def _with_retries(self, attempt: Any, deadline: float) -> Any:
        """Run ``attempt()`` under the breaker, retrying what is safe to retry."""
        if not self.breaker.allow():
            st = self.breaker.status()
            raise CloudUnavailableError(
                f"endpoint '{self.endpoint.name}': circuit breaker open after "
                f"{st.consecutive_failures} failures (last: {st.last_error}); "
                f"retry in {st.retry_in_s:.0f} s"
            )
        self.last_retries = 0
        for n in range(self.endpoint.max_retries + 1):
            try:
                result = attempt()
            except _Retryable as r:
                err = r.error
                if n == self.endpoint.max_retries:
                    break
                delay = self.endpoint.backoff_s * 2**n
                delay = r.retry_after if r.retry_after is not None else delay
                delay += self._rng.uniform(0, self.endpoint.backoff_s)  # jitter
                if time.monotonic() + delay >= deadline:
                    break
                log.info("cloud.retry", endpoint=self.endpoint.name, attempt=n + 1, error=str(err))
                self.last_retries += 1
                time.sleep(delay)
                continue
            except CloudError as exc:
                self.breaker.failure(str(exc))
                raise
            self.breaker.success()
            return result
        self.breaker.failure(str(err))
        raise err

    def _connect_error(self, exc: httpx.HTTPError) -> _Retryable | CloudError:
        name = self.endpoint.name
        if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
            return _Retryable(CloudUnavailableError(f"endpoint '{name}': connect timed out"))
        if isinstance(exc, httpx.ConnectError):
            return _Retryable(CloudUnavailableError(f"endpoint '{name}' unreachable: {exc}"))
        if isinstance(exc, httpx.TimeoutException):
            return CloudTimeoutError(f"endpoint '{name}': no answer within the read deadline")
        if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
            # The connection dropped before any response: typically a kept-alive connection the
            # server had already closed. Nothing was answered (or billed), so retrying is safe.
            return _Retryable(
                CloudUnavailableError(f"endpoint '{name}': connection dropped before a response")
            )
        return CloudResponseError(f"endpoint '{name}': {type(exc).__name__}: {exc}")

    @staticmethod
    def _send_fresh_if_stale(send: Callable[[], _T]) -> _T:
        """``send()``, and once more if the connection dropped before any answer reached us.

        The pooled connection was already closed by the server, or is being closed: a server
        may end a failed stream cleanly and close the connection only afterwards, so a request
        already on it gets nothing, or a 200 head and then nothing. httpx drops that connection,
        so one immediate resend goes out on a fresh one; nothing was delivered to the caller,
        and it is not a server failure, so it does not count as a retry.
        """
        try:
            return send()
        except (httpx.RemoteProtocolError, httpx.ReadError):
            return send()

    def _check_stream_head(self, resp: httpx.Response) -> None:
        if resp.status_code != 200:
            err = self._status_error(resp)
            resp.close()
            raise err
        ctype = resp.headers.get("Content-Type", "")
        if not ctype.startswith("text/event-stream"):
            resp.close()
            raise CloudResponseError(
                f"endpoint '{self.endpoint.name}' answered {ctype or 'no content type'} "
                "instead of an event stream"
            )

    # -- calls ----------------------------------------------------------------------------
    def post_json(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        deadline = time.monotonic() + self.endpoint.deadline_s

        def attempt() -> dict[str, Any]:
            try:
                resp = self._send_fresh_if_stale(
                    lambda: self._http.post(
                        path, json=body, headers=self._headers(), timeout=self._timeout(deadline)
                    )
                )
            except httpx.HTTPError as exc:
                err = self._connect_error(exc)
                raise err from exc
            if resp.status_code != 200:
                raise self._status_error(resp)
            try:
                data = resp.json()
            except ValueError:
                raise CloudResponseError(
                    f"endpoint '{self.endpoint.name}' sent a body that is not JSON"
                ) from None
            if not isinstance(data, dict):
                raise CloudResponseError(f"endpoint '{self.endpoint.name}' sent non-object JSON")
            return data

        return self._with_retries(attempt, deadline)  # type: ignore[no-any-return]

    def stream_events(
        self, path: str, body: dict[str, Any], cancel: CancelSignal | None = None
    ) -> Iterator[dict[str, Any]]:
        """Yield the JSON events of an SSE stream; raise if it ends without ``[DONE]``."""
        deadline = time.monotonic() + self.endpoint.deadline_s
        request = {**body, "stream": True}

        def open_stream() -> tuple[httpx.Response, Iterator[str]]:
            req = self._http.build_request(
                "POST", path, json=request, headers=self._headers(), timeout=self._timeout(deadline)
            )
            resp = self._http.send(req, stream=True)
            try:
                self._check_stream_head(resp)
                lines = resp.iter_lines()
                return resp, _chain(_through_first_event(lines), lines)
            except BaseException:
                resp.close()
                raise

        def attempt() -> tuple[httpx.Response, Iterator[str]]:
            try:
                return self._send_fresh_if_stale(open_stream)
            except httpx.HTTPError as exc:
                raise self._connect_error(exc) from exc

        resp, lines = self._with_retries(attempt, deadline)
        name = self.endpoint.name
        received = 0
        try:
            for line in lines:
                if cancel is not None and cancel.is_set():
                    raise CancelledError("cancelled while streaming from the cloud")
                if time.monotonic() > deadline:
                    raise CloudTimeoutError(
                        f"endpoint '{name}': deadline of {self.endpoint.deadline_s:g} s passed "
                        f"mid-stream after {received} events"
                    )
                if not line.startswith("data:"):
                    continue
                payload = line[5:].strip()
                if payload == "[DONE]":
                    return
                try:
                    event = json.loads(payload)
                except ValueError:
                    raise CloudResponseError(
                        f"endpoint '{name}' sent a stream event that is not JSON"
                    ) from None
                if isinstance(event, dict) and "error" in event:
                    raise CloudResponseError(f"endpoint '{name}' reported: {event['error']}")
                received += 1
                yield event
        except httpx.TimeoutException:
            self.breaker.failure("read timeout mid-stream")
            raise CloudTimeoutError(
                f"endpoint '{name}': stream stalled past the read deadline after {received} events"
            ) from None
        except httpx.HTTPError as exc:
            self.breaker.failure(f"stream cut: {exc}")
            raise CloudStreamCutError(
                f"endpoint '{name}': stream broke after {received} events ({type(exc).__name__})"
            ) from None
        finally:
            resp.close()
        self.breaker.failure("stream ended without [DONE]")
        raise CloudStreamCutError(
            f"endpoint '{name}': stream ended after {received} events without completing"
        )


def _through_first_event(lines: Iterator[str]) -> list[str]:
    """Read SSE lines up to and including the first ``data:`` line (or to the end)."""
    head: list[str] = []
    for line in lines:
        head.append(line)
        if line.startswith("data:"):
            break
    return head


def _chain(head: list[str], rest: Iterator[str]) -> Iterator[str]:
    yield from head
    yield from rest
