"""`aios demo --service`: the main job as a device runs it, through the system service.

Starts `aios serve` on the embedded reference config (a throwaway app token, a private socket
and a free port in a temp folder), asks it to summarize the bundled sample over HTTP as an app
would, prints the answer, its execution record and the equivalent curl command, then stops the
service with SIGTERM (a graceful shutdown).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Any

from aios.errors import AIOSError

SAMPLE_DOCUMENT = "sample_article.txt"
READY = re.compile(r"aios serve: listening on (http://\S+) and unix:(\S+)")
START_TIMEOUT_S = 120


def _config(tmp: Path, token: str) -> Path:
    reference = resources.files("aios.oem_configs").joinpath("reference.toml").read_text()
    digest = hashlib.sha256(token.encode()).hexdigest()
    cfg = tmp / "demo.toml"
    cfg.write_text(
        reference
        + f"""
[service]
apps_file = "{tmp / "apps.toml"}"

[[apps]]
id = "demo"
token_sha256 = "{digest}"
skills = ["summarize"]
data_classes = ["text", "documents"]
""",
        encoding="utf-8",
    )
    return cfg


def _start(cfg: Path, tmp: Path) -> tuple[subprocess.Popen[str], str, str]:
    log = (tmp / "service.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "aios.cli.main", "serve", "--config", str(cfg), "--port", "0"]
        + ["--socket", str(tmp / "aios.sock"), "--log-level", "warning"],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        m = READY.match(line)
        if m:
            return proc, m.group(1), m.group(2)
        if not line and proc.poll() is not None:
            break
    proc.kill()
    tail = (tmp / "service.log").read_text(errors="replace")[-2000:]
    raise AIOSError(f"the service did not start:\n{tail}")


def demo_service(args: argparse.Namespace) -> int:
    import httpx

    from aios.cli import render
    from aios.record import ExecutionRecord

    sample = resources.files("aios.data").joinpath(SAMPLE_DOCUMENT).read_text(encoding="utf-8")
    token = "demo-" + secrets.token_urlsafe(16)
    with tempfile.TemporaryDirectory(prefix="aios-demo-") as name:
        tmp = Path(name)
        t0 = time.monotonic()
        proc, url, sock = _start(_config(tmp, token), tmp)
        err = sys.stderr
        print(f"service up in {time.monotonic() - t0:.1f} s: {url} and unix:{sock}", file=err)
        print(f"POST {url}/v1/skills/summarize ({len(sample)} characters)\n", file=err, flush=True)
        try:
            with httpx.Client(
                base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=300
            ) as client:
                health = client.get("/health").json()
                resp = client.post(
                    "/v1/skills/summarize", json={"input": {"text": sample, "length": "medium"}}
                )
            body: dict[str, Any] = resp.json()
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(60)
        if resp.status_code != 200:
            raise AIOSError(f"the service answered {resp.status_code}: {body.get('error')}")
        if args.json:
            print(json.dumps({"health": health, **body}, ensure_ascii=False, indent=2))
        else:
            render.output_dict(body["output"], "summarize")
            sys.stdout.flush()
            render.record(ExecutionRecord.model_validate(body["record"]))
            print(
                "\nthe same call from any app:\n"
                f"  curl -s {url}/v1/skills/summarize -H 'Authorization: Bearer <app token>' "
                '-H \'Content-Type: application/json\' -d \'{"input": {"text": "..."}}\'\n'
                f"service stopped gracefully (exit {code})",
                file=err,
            )
    return 0
