"""`aios models pull` (download models from the OEM model server) and `aios models status`
(feature status per model and skill). Only argparse is imported at module top."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from aios.errors import AIOSError


def add_parsers(msub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    q = msub.add_parser(
        "pull",
        help="download models from the OEM model server (resumable, sha256-verified)",
        description=(
            "Download the files of config models with `source = { url = ..., file = ..., "
            "sha256 = ... }` into the model dir. An interrupted download resumes where it "
            "stopped; a file is installed only once its sha256 matches."
        ),
    )
    common(q)
    q.add_argument("ids", nargs="+", metavar="ID", help="model ids of the matrix")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.set_defaults(handler=pull)
    q = msub.add_parser(
        "status",
        help="feature status: which models and skills are available, downloadable, and why not",
    )
    common(q)
    q.set_defaults(handler=status)


def pull(args: argparse.Namespace) -> int:
    from aios.cli.index_commands import ProgressBar
    from aios.config.loader import load_config
    from aios.delivery import ModelDelivery

    cfg, path = load_config(args.config)
    delivery = ModelDelivery.from_config(cfg, path.parent)
    specs = []
    for mid in args.ids:
        try:
            spec = cfg.model(mid)
        except KeyError:
            known = ", ".join(m.id for m in cfg.models)
            raise AIOSError(f"model '{mid}' is not in the model matrix", hint=known) from None
        if spec.source is None or not spec.source.url:
            raise AIOSError(f"model '{mid}' has no `source.url`: it is not downloaded")
        specs.append(spec)
    done: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for spec in specs:
        if delivery.installed(spec):
            target = delivery.target(spec)
            done.append(_row(spec.id, target, 0.0, already=True))
            if not args.json:
                print(f"{spec.id}: already downloaded: {target}")
            continue
        bar = ProgressBar(
            enabled=not (args.json or args.quiet), unit="MB", verb="downloaded", scale=1e6
        )

        def show(p: dict[str, Any], bar: ProgressBar = bar, mid: str = spec.id) -> None:
            total = p["bytes_total"] or p["bytes_done"] + 1  # unknown size: never "final"
            bar(min(p["bytes_done"], total), total, mid)

        t0 = time.perf_counter()
        try:
            target = delivery.pull(spec, on_progress=show)
        except AIOSError as exc:
            errors.append({"id": spec.id, "code": exc.code, "message": str(exc)})
            if not args.json:
                print(f"aios: error: {exc}", file=sys.stderr)
            continue
        size = target.stat().st_size
        bar(size, size, spec.id)
        done.append(_row(spec.id, target, time.perf_counter() - t0, already=False))
        if not args.json:
            print(f"{spec.id}: downloaded {size / 1e6:.1f} MB, sha256 verified: {target}")
    if args.json:
        print(json.dumps({"pulled": done, "errors": errors}, ensure_ascii=False, indent=2))
    return 1 if errors else 0


def _row(mid: str, target: Any, seconds: float, *, already: bool) -> dict[str, Any]:
    return {
        "id": mid,
        "path": str(target),
        "bytes": target.stat().st_size,
        "seconds": round(seconds, 2),
        "already_downloaded": already,
    }


def status(args: argparse.Namespace) -> int:
    from aios.delivery import feature_status
    from aios.orchestrator import Orchestrator

    orch = Orchestrator.from_file(
        args.config, profile=args.profile, strict=bool(args.strict_plugins), ledger=False
    )
    try:
        report = feature_status(orch)
    finally:
        orch.close()
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
        return 0
    print(f"profile {report['profile']}")
    print("models:")
    for mid, st in report["models"].items():
        print(f"  {mid:<28} {st['tier']:<6} {_state(st):<24} {st.get('reason', '')}")
    print("skills:")
    for name, st in report["skills"].items():
        via = f"via {st['model']}" if st.get("model") else ""
        print(f"  {name:<28} {_state(st):<24} {via or st.get('reason', '')}")
    return 0


def _state(st: dict[str, Any]) -> str:
    p = st.get("progress")
    if st["state"] == "downloading" and p:
        pct = f"{p['percent']:.0f}%" if p.get("percent") is not None else "?"
        return f"downloading {pct}"
    return str(st["state"])
