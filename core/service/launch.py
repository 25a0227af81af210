"""Start `aios serve` as a child process and wait for its ready line.

The demo (`aios demo --service`), the service benchmark and the tests all need a real service
in its own process: one app with a known token on the reference config, a free port, a private
socket. Only the standard library is imported here.
"""

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

from aios.errors import AIOSError

READY = re.compile(r"aios serve: listening on (http://\S+) and unix:(\S+)")


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def reference_toml() -> str:
    return resources.files("aios.oem_configs").joinpath("reference.toml").read_text()


def app_toml(app_id: str, token: str, skills: list[str], **fields: object) -> str:
    """One `[[apps]]` table; ``fields`` are more of its keys (quotas, data classes...)."""
    lines = [
        "[[apps]]",
        f'id = "{app_id}"',
        f'token_sha256 = "{token_sha256(token)}"',
        "skills = [" + ", ".join(f'"{s}"' for s in skills) + "]",
    ]
    for key, value in fields.items():
        if isinstance(value, list):
            lines.append(f"{key} = [" + ", ".join(f'"{v}"' for v in value) + "]")
        elif isinstance(value, str):
            lines.append(f'{key} = "{value}"')
        else:
            lines.append(f"{key} = {value}")
    return "\n".join(lines) + "\n"


@dataclass
class Spawned:
    proc: subprocess.Popen[str]
    url: str
    socket: Path
    log: Path

    def stop(self, timeout_s: float = 60) -> int:
        """SIGTERM (a graceful shutdown), then kill if it takes longer than ``timeout_s``."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def spawn(
    config: Path,
    workdir: Path,
    *,
    args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    timeout_s: float = 120,
) -> Spawned:
    """`aios serve --config CONFIG --port 0 --socket WORKDIR/aios.sock ARGS`; its stderr goes to
    WORKDIR/service.log. Raises ``AIOSError`` with the log's tail if it does not come up."""
    log = workdir / "service.log"
    cmd = [sys.executable, "-m", "aios.cli.main", "serve", "--config", str(config)]
    cmd += ["--port", "0", "--socket", str(workdir / "aios.sock"), *args]
    with log.open("w") as err:
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env={**os.environ, **(env or {})},
        )
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    line = ""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line or proc.poll() is not None:
            break
    m = READY.match(line)
    if not m:
        proc.kill()
        proc.wait(10)
        tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise AIOSError(f"aios serve did not start ({line.strip()!r}):\n{tail}")
    return Spawned(proc, m.group(1), Path(m.group(2)), log)
