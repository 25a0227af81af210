"""`aios demo --service`: the main job as a device runs it, through the system service.

Starts `aios serve` on the embedded reference config (a throwaway app token, a private socket
and a free port in a temp folder), asks it to summarize the bundled sample over HTTP as an app
would, prints the answer, its execution record and the equivalent curl command, then stops the
service with SIGTERM (a graceful shutdown).
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Any

from aios.cli.device_commands import SAMPLE_DOCUMENT
from aios.errors import AIOSError


def _config(tmp: Path, token: str) -> Path:
    from aios.service.launch import app_toml, reference_toml

    cfg = tmp / "demo.toml"
    apps = app_toml("demo", token, ["summarize"], data_classes=["text", "documents"])
    cfg.write_text(
        reference_toml() + f'\n[service]\napps_file = "{tmp / "apps.toml"}"\n\n' + apps,
        encoding="utf-8",
    )
    return cfg


def demo_service(args: argparse.Namespace) -> int:
    import httpx

    from aios.cli import render
    from aios.record import ExecutionRecord
    from aios.service.launch import spawn

    sample = resources.files("aios.data").joinpath(SAMPLE_DOCUMENT).read_text(encoding="utf-8")
    token = "demo-" + secrets.token_urlsafe(16)
    with tempfile.TemporaryDirectory(prefix="aios-demo-") as name:
        tmp = Path(name)
        t0 = time.monotonic()
        svc = spawn(_config(tmp, token), tmp, args=("--log-level", "warning"))
        url, sock = svc.url, svc.socket
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
            code = svc.stop()
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
