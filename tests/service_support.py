"""Start the real `aios serve` in a subprocess for the service tests."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import httpx

TOKENS = {
    "full": "tok-full-0123456789",
    "limited": "tok-limited-0123456789",
    "textonly": "tok-textonly-0123456789",
}


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def service_config(
    tmp: Path, *, grace_s: float = 5.0, extra_apps: str = "", extra_service: str = ""
) -> str:
    """The reference config plus a [service] section and test apps."""
    reference = resources.files("aios.oem_configs").joinpath("reference.toml").read_text()
    return (
        reference
        + f"""
[service]
apps_file = "{tmp / "apps.toml"}"
max_body_bytes = 65536
shutdown_grace_s = {grace_s}
{extra_service}

[[apps]]
id = "full"
token_sha256 = "{_sha(TOKENS["full"])}"
skills = ["*"]
data_classes = ["text", "documents"]

[[apps]]
id = "limited"
token_sha256 = "{_sha(TOKENS["limited"])}"
skills = ["summarize"]
data_classes = ["text", "documents"]
priority = "background"
requests_per_minute = 3

[[apps]]
id = "textonly"
token_sha256 = "{_sha(TOKENS["textonly"])}"
skills = ["*"]
data_classes = ["text"]
"""
        + extra_apps
    )


@dataclass
class Service:
    proc: subprocess.Popen[str]
    url: str
    socket: Path
    config: Path
    log: Path

    def client(self, app: str | None = "full", **kw: object) -> httpx.Client:
        headers = {"Authorization": f"Bearer {TOKENS[app]}"} if app else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120, **kw)  # type: ignore[arg-type]

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def start_service(
    tmp: Path,
    *,
    grace_s: float = 5.0,
    socket_mode: str = "0600",
    extra_config: str = "",
    extra_service: str = "",
    env: dict[str, str] | None = None,
) -> Service:
    """``extra_config`` is appended to the config (more ``[[apps]]``), ``extra_service`` to its
    ``[service]`` table; ``env`` adds environment variables."""
    cfg = tmp / "oem.toml"
    text = service_config(
        tmp, grace_s=grace_s, extra_apps=extra_config, extra_service=extra_service
    )
    cfg.write_text(text, encoding="utf-8")
    sock = tmp / "aios.sock"
    log = tmp / "service.log"
    env = {**os.environ, "AIOS_LOG_LEVEL": "info", "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aios.cli.main",
            "serve",
            "--config",
            str(cfg),
            "--port",
            "0",
            "--socket",
            str(sock),
            "--socket-mode",
            socket_mode,
        ],
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    line = ""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line or proc.poll() is not None:
            break
    m = re.match(r"aios serve: listening on (http://\S+) and unix:(\S+)", line)
    if not m:
        proc.kill()
        raise RuntimeError(f"service did not start: {line!r}\n{log.read_text()[-3000:]}")
    return Service(proc, m.group(1), Path(m.group(2)), cfg, log)
