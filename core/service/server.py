"""Run the service: uvicorn on TCP loopback and a Unix socket, with signals handled.

- SIGTERM / SIGINT: stop accepting, let in-flight requests finish for ``shutdown_grace_s``,
  then cancel the rest (they end with a ``shutting_down`` error, never silently).
- SIGHUP: reload the config file. It is validated whole first; a bad one is refused (every
  problem logged) and the old one keeps serving. A good one serves new requests while in-flight
  ones finish on the old orchestrator, which is then closed.
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import sys
import threading
from collections.abc import Generator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
import uvicorn

from aios.errors import AIOSError
from aios.orchestrator import Orchestrator
from aios.service.app import create_app
from aios.service.connections import ensure_fd_room, guarded_protocol
from aios.service.runtime import Runtime
from aios.sources import aios_home

log = structlog.get_logger("aios.service")


@dataclass(frozen=True)
class Listen:
    host: str
    port: int
    socket_path: Path | None
    socket_mode: int


def tcp_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise AIOSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(128)
    return sock


def unix_socket(path: Path, mode: int) -> socket.socket:
    """A listening Unix socket whose file has ``mode`` from the moment it exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink() or path.exists():
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise AIOSError(f"{path} exists and is not a socket; not replacing it")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()  # stale: nobody listens there
        else:
            raise AIOSError(f"another service already listens on {path}")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o777 & ~mode)  # the file is born with the mode: no window to connect
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    os.chmod(path, mode)  # umask only removes bits; set exactly what was asked
    sock.listen(128)
    return sock


class AiosServer(uvicorn.Server):
    def __init__(
        self,
        config: uvicorn.Config,
        runtime: Runtime,
        config_path: str | None,
        grace_s: float,
        ready_line: str,
    ) -> None:
        super().__init__(config)
        self.runtime = runtime
        self.config_path = config_path
        self.grace_s = grace_s
        self.ready_line = ready_line
        self._reload_lock = threading.Lock()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            print(self.ready_line, flush=True)
            log.info("service.ready", line=self.ready_line, pid=os.getpid())

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(sig, frame)  # uvicorn stops accepting and waits for connections
        if self.runtime.draining:
            return
        self.runtime.draining = True
        log.info(
            "service.draining",
            signal=signal.Signals(sig).name,
            inflight=self.runtime.inflight(),
            grace_s=self.grace_s,
        )
        timer = threading.Timer(self.grace_s, self._grace_over)
        timer.daemon = True
        timer.start()

    def _grace_over(self) -> None:
        n = self.runtime.cancel_all()
        if n:
            log.warning("service.grace_expired", cancelled=n, grace_s=self.grace_s)

    def _on_hup(self, sig: int, frame: Any) -> None:
        threading.Thread(target=self._reload, name="aios-reload", daemon=True).start()

    def _reload(self) -> None:
        with self._reload_lock:
            log.info("service.reloading", config=self.config_path or "(embedded default)")
            self.runtime.reload(self.config_path)

    @contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # Through the event loop, so handlers run as loop callbacks, not between two bytecodes
        # of whatever the main thread was doing. Unlike uvicorn's own, this does not re-raise
        # the signal after shutdown: a graceful stop exits 0.
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        import asyncio

        loop = asyncio.get_running_loop()
        handlers = {signal.SIGINT: self.handle_exit, signal.SIGTERM: self.handle_exit}
        if hasattr(signal, "SIGHUP"):
            handlers[signal.SIGHUP] = self._on_hup
        for sig, handler in handlers.items():
            loop.add_signal_handler(sig, handler, sig, None)
        try:
            yield
        finally:
            for sig in handlers:
                loop.remove_signal_handler(sig)


def serve(
    config_path: str | None,
    *,
    host: str | None = None,
    port: int | None = None,
    socket_path: str | None = None,
    socket_mode: str | None = None,
    profile: str | None = None,
) -> int:
    orch = Orchestrator.from_file(config_path, profile=profile)
    runtime = Runtime.build(orch)
    settings = orch.config.service
    try:
        ensure_fd_room(settings.max_connections)
    except ValueError as exc:
        raise AIOSError(str(exc), hint="lower [service] max_connections") from None
    mode = int(socket_mode or settings.socket_mode, 8)
    if not 0 <= mode <= 0o777:
        raise AIOSError(f"socket mode {socket_mode} is not a file mode (e.g. 0660)")
    uds = Path(socket_path or settings.socket or aios_home() / "aios.sock").expanduser()
    tcp = tcp_socket(host or settings.host, settings.port if port is None else port)
    try:
        unix = unix_socket(uds, mode)
    except BaseException:
        tcp.close()
        raise
    bound_host, bound_port = tcp.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    ready = f"aios serve: listening on http://{shown}:{bound_port} and unix:{uds}"
    app = create_app(orch, settings, runtime=runtime)
    config = uvicorn.Config(
        app,
        http=guarded_protocol(
            max_connections=settings.max_connections,
            header_timeout_s=settings.header_timeout_s,
        ),
        timeout_keep_alive=settings.keep_alive_s,  # type: ignore[arg-type]
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=int(settings.shutdown_grace_s) + 5,
    )
    server = AiosServer(config, runtime, config_path, settings.shutdown_grace_s, ready)
    try:
        server.run(sockets=[tcp, unix])
    finally:
        tcp.close()
        unix.close()
        try:
            uds.unlink()
        except FileNotFoundError:
            pass
    log.info("service.stopped", pid=os.getpid())
    sys.stdout.flush()
    return 0
