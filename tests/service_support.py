"""Start the real `aios serve` in a subprocess for the service tests."""

from __future__ import annotations

import json
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from aios.service.launch import Spawned, reference_toml, spawn, token_sha256

TOKENS = {
    "full": "tok-full-0123456789",
    "limited": "tok-limited-0123456789",
    "textonly": "tok-textonly-0123456789",
}


_sha = token_sha256


def service_config(
    tmp: Path, *, grace_s: float = 5.0, extra_apps: str = "", extra_service: str = ""
) -> str:
    """The reference config plus a [service] section and test apps."""
    return (
        reference_toml()
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
requests_per_minute = 4

[[apps]]
id = "textonly"
token_sha256 = "{_sha(TOKENS["textonly"])}"
skills = ["*"]
data_classes = ["text"]
"""
        + extra_apps
    )


@dataclass
class Service(Spawned):
    config: Path

    def client(self, app: str | None = "full", **kw: object) -> httpx.Client:
        headers = {"Authorization": f"Bearer {TOKENS[app]}"} if app else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120, **kw)  # type: ignore[arg-type]

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def log_events(self) -> list[dict[str, Any]]:
        """The service's JSON log lines, parsed (other output, e.g. llama.cpp's, skipped)."""
        out = []
        for line in self.log_text().splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
        return out

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)


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
    spawned = spawn(
        cfg,
        tmp,
        args=("--socket-mode", socket_mode),
        env={"AIOS_LOG_LEVEL": "info", "PYTHONUNBUFFERED": "1", **(env or {})},
        timeout_s=60,
    )
    return Service(spawned.proc, spawned.url, spawned.socket, spawned.log, cfg)


def sse_events(text: str) -> list[tuple[str, Any]]:
    """(event name, parsed data) for each Server-Sent Event in a response body; the OpenAI
    stream's closing ``[DONE]`` stays a string."""
    events = []
    for block in text.strip().split("\n\n"):
        name, data = "message", []
        for line in block.splitlines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
        raw = "\n".join(data)
        events.append((name, raw if raw == "[DONE]" else json.loads(raw)))
    return events
