"""`aios models load|unload|pin|resident`: model residency in the running service.

Models live in the `aios serve` process, so these verbs are requests to it: over its Unix
socket by default (the config's `service.socket`, else $AIOS_HOME/aios.sock), or `--url`. They
need an app token allowed every skill (`AIOS_TOKEN` or `--token`): loading and pinning spend
the device's memory on everyone's behalf. Imported to build the parser: nothing heavy at top.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aios.errors import AIOSError

VERBS = {
    "load": "load a device model now (through the memory governor)",
    "unload": "unload a model once its running calls finish",
    "pin": "keep a loaded model resident: never evicted or shed (--off to unpin)",
    "resident": "list models with residency, memory and pins",
}


class ServiceError(AIOSError):
    code = "service_error"


def add_parsers(msub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    for verb, helptext in VERBS.items():
        q = msub.add_parser(verb, help=f"{helptext} (in the running `aios serve`)")
        common(q)
        if verb != "resident":
            q.add_argument("model", metavar="ID", help="model id from the matrix")
        if verb == "load":
            q.add_argument("--pin", action="store_true", help="pin it once loaded")
        if verb == "pin":
            q.add_argument("--off", action="store_true", help="unpin instead")
        q.add_argument("--url", metavar="URL", help="service URL (default: its Unix socket)")
        q.add_argument("--socket", metavar="PATH", help="service socket (default: from config)")
        q.add_argument("--token", metavar="T", help="app token (default: $AIOS_TOKEN)")
        q.set_defaults(handler=run_verb, verb=verb)


def _client(args: argparse.Namespace) -> Any:
    import httpx

    from aios.config.loader import load_config
    from aios.sources import aios_home

    token = args.token or os.environ.get("AIOS_TOKEN")
    if not token:
        raise ServiceError(
            "model control needs an app token", hint="set AIOS_TOKEN or pass --token"
        )
    headers = {"Authorization": f"Bearer {token}"}
    if args.url:
        try:
            url = httpx.URL(args.url.rstrip("/"))
        except (httpx.InvalidURL, ValueError) as exc:
            raise ServiceError(f"--url {args.url!r} is not a URL: {exc}") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ServiceError(f"--url {args.url!r}: expected http://HOST:PORT")
        if url.port is not None and not 0 < url.port < 65536:
            raise ServiceError(f"--url {args.url!r}: port {url.port} is outside 1-65535")
        return httpx.Client(base_url=url, headers=headers, timeout=600)
    cfg, _ = load_config(args.config)
    sock = Path(args.socket or cfg.service.socket or aios_home() / "aios.sock").expanduser()
    if not sock.exists():
        raise ServiceError(
            f"no aios service listens on {sock}", hint="start it with `aios serve`, or use --url"
        )
    if not sock.is_socket():
        raise ServiceError(f"{sock} is not a socket", hint="--socket names the service's socket")
    transport = httpx.HTTPTransport(uds=str(sock))
    return httpx.Client(base_url="http://aios", transport=transport, headers=headers, timeout=600)


def run_verb(args: argparse.Namespace) -> int:
    import httpx

    verb = args.verb
    with _client(args) as client:
        try:
            if verb == "resident":
                resp = client.get("/v1/models/status")
            elif verb == "load":
                resp = client.post(f"/v1/models/{args.model}/load", json={"pin": args.pin})
            elif verb == "unload":
                resp = client.post(f"/v1/models/{args.model}/unload", json={})
            else:
                resp = client.post(f"/v1/models/{args.model}/pin", json={"pinned": not args.off})
        except httpx.HTTPError as exc:
            raise ServiceError(f"cannot reach the aios service: {exc}") from None
    body = resp.json() if resp.content else {}
    if resp.status_code >= 400:
        err = body.get("error", {}) if isinstance(body, dict) else {}
        raise ServiceError(
            f"{verb} refused ({resp.status_code}): {err.get('message', resp.text)}",
            hint=err.get("hint"),
        )
    if args.json:
        print(json.dumps(body, ensure_ascii=False, indent=2))
    elif verb == "resident":
        _table(body)
    else:
        print(json.dumps(body, ensure_ascii=False))
    return 0


def _table(body: dict[str, Any]) -> None:
    print(f"memory: {body['used_mb']:.0f} MB of {body['budget_mb']:.0f} MB model budget in use")
    for m in body["models"]:
        state = "resident" if m["resident"] else "-"
        pin = "pinned" if m["pinned"] else ""
        calls = (
            f"{m['active_calls']} running, {m['waiting_calls']} waiting" if m["resident"] else ""
        )
        print(f"{m['id']:<26} {state:<9} {pin:<7} {m['memory_mb']:>7.0f} MB  {calls}")
