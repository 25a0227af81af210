"""Connection guards of `aios serve`: idle and dribbling connections are closed, the number of
open connections is capped, and the service keeps answering everyone else meanwhile.

The real service runs in a subprocess (models are never loaded: only /health is called).
"""

from __future__ import annotations

import json
import resource
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from aios.service import connections
from aios.service.connections import ensure_fd_room

from .service_support import Service, start_service

HEADER_TIMEOUT_S = 1.5
MAX_CONNECTIONS = 8
KEEP_ALIVE_S = 1.0


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("service-connections")
    service = start_service(
        tmp,
        extra_service=(
            f"header_timeout_s = {HEADER_TIMEOUT_S}\nmax_connections = {MAX_CONNECTIONS}\n"
            f"keep_alive_s = {KEEP_ALIVE_S}"
        ),
    )
    try:
        yield service
    finally:
        service.stop()


def _connect(svc: Service) -> socket.socket:
    host, port = svc.url.removeprefix("http://").rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=10)


def _reply(sock: socket.socket) -> tuple[bytes, dict, float]:
    """(status line, JSON error body, seconds waited) of what the service sends before closing."""
    t0 = time.perf_counter()
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head.split(b"\r\n", 1)[0], json.loads(body), time.perf_counter() - t0


def _healthy(svc: Service) -> bool:
    return httpx.get(f"{svc.url}/health", timeout=10).status_code == 200


def _wait_until_idle(svc: Service) -> None:
    """Connections a test left behind are closed server-side before the next test counts."""
    time.sleep(HEADER_TIMEOUT_S + 0.5)


def test_a_connection_that_sends_nothing_gets_408_and_is_closed(svc: Service) -> None:
    with _connect(svc) as s:
        assert _healthy(svc)  # others are served while it idles
        status, body, waited = _reply(s)
    assert status == b"HTTP/1.1 408 Request Timeout"
    assert body["error"]["code"] == "request_timeout"
    assert "header_timeout_s" in body["error"]["hint"]
    assert waited <= HEADER_TIMEOUT_S + 2
    assert _healthy(svc)


def test_a_dribbled_request_head_gets_408_though_bytes_keep_coming(svc: Service) -> None:
    head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 200 + b"\r\n\r\n"
    with _connect(svc) as s:
        s.settimeout(0.25)
        t0 = time.perf_counter()
        got = b""
        for i in range(len(head)):
            try:
                s.send(head[i : i + 1])
            except OSError:
                break  # closed on us: what should happen
            try:
                got += s.recv(4096)
                break
            except TimeoutError:
                continue
        elapsed = time.perf_counter() - t0
    assert got.startswith(b"HTTP/1.1 408"), got
    # The deadline runs from the first byte, not the last: dribbling does not extend it.
    assert HEADER_TIMEOUT_S - 0.1 <= elapsed <= HEADER_TIMEOUT_S + 2, elapsed
    assert _healthy(svc)


def test_a_complete_request_is_not_cut_by_the_header_deadline(svc: Service) -> None:
    with _connect(svc) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(HEADER_TIMEOUT_S + 5)
        t0 = time.perf_counter()
        got = b""
        while chunk := s.recv(4096):
            got += chunk
        waited = time.perf_counter() - t0
    # One whole 200 reply, then the keep-alive timer (not a 408) closed the idle connection.
    assert got.startswith(b"HTTP/1.1 200"), got
    assert b"408" not in got and got.count(b"HTTP/1.1") == 1
    head, _, body = got.partition(b"\r\n\r\n")
    assert json.loads(body)["status"] == "ok"
    assert waited <= KEEP_ALIVE_S + 2


def test_keep_alive_connections_serve_several_requests(svc: Service) -> None:
    with httpx.Client(base_url=svc.url, timeout=10) as c:
        for _ in range(3):
            assert c.get("/health").status_code == 200
            time.sleep(KEEP_ALIVE_S / 4)


def test_connections_past_the_cap_get_503_and_the_service_recovers(svc: Service) -> None:
    _wait_until_idle(svc)
    held = [_connect(svc) for _ in range(MAX_CONNECTIONS)]
    refused = []
    try:
        time.sleep(0.2)  # let the service accept them all
        for _ in range(40):  # a burst: each is answered and closed, none piles up
            s = _connect(svc)
            refused.append(_reply(s))
            s.close()
    finally:
        for s in held:
            s.close()
    assert {status for status, _, _ in refused} == {b"HTTP/1.1 503 Service Unavailable"}
    assert all(body["error"]["code"] == "too_many_connections" for _, body, _ in refused)
    assert max(waited for _, _, waited in refused) < 2.0  # refused at once, not after a wait
    deadline = time.monotonic() + 5
    while not _healthy_quietly(svc) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _healthy(svc)
    refusals = [e for e in svc.log_events() if e.get("event") == "service.connection_refused"]
    assert 1 <= len(refusals) < 40  # logged, but not once per refused connection


def _healthy_quietly(svc: Service) -> bool:
    try:
        return _healthy(svc)
    except httpx.HTTPError:
        return False


def test_the_unix_socket_is_guarded_too(svc: Service) -> None:
    _wait_until_idle(svc)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(svc.socket))
        status, body, _ = _reply(s)
    assert status == b"HTTP/1.1 408 Request Timeout"
    assert body["error"]["code"] == "request_timeout"


# -- the file-descriptor budget ----------------------------------------------------------------
def test_fd_room_raises_the_soft_limit_to_fit_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(connections.resource, "getrlimit", lambda _: (256, 4096))
    monkeypatch.setattr(connections.resource, "setrlimit", lambda _, v: calls.append(v))
    assert ensure_fd_room(100) == 256 and calls == []
    assert ensure_fd_room(1000) == 1000 + connections.RESERVED_FDS
    assert calls == [(1000 + connections.RESERVED_FDS, 4096)]


def test_fd_room_names_the_numbers_when_the_hard_limit_is_too_low(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(connections.resource, "getrlimit", lambda _: (256, 512))
    with pytest.raises(ValueError, match=r"max_connections = 1000 needs 1064 .* at most 512"):
        ensure_fd_room(1000)


def test_fd_room_leaves_an_unlimited_soft_limit_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    inf = resource.RLIM_INFINITY
    monkeypatch.setattr(connections.resource, "getrlimit", lambda _: (inf, inf))
    assert ensure_fd_room(60_000) == inf


def test_serve_refuses_a_cap_the_process_cannot_hold(tmp_path: Path) -> None:
    import subprocess
    import sys

    from .service_support import service_config

    cfg = tmp_path / "oem.toml"
    cfg.write_text(
        service_config(tmp_path, extra_service="max_connections = 60000"), encoding="utf-8"
    )
    # Lower the hard limit for the child only, so the cap cannot fit.
    code = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024));"
        "from aios.cli.main import main; sys.exit(main(sys.argv[1:]))"
    )
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "serve",
            "--config",
            str(cfg),
            "--port",
            "0",
            "--socket",
            str(tmp_path / "s.sock"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, "AIOS_HOME": str(tmp_path / "home")},
    )
    assert r.returncode != 0
    assert "max_connections = 60000 needs 60064 open files" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "s.sock").exists()
