"""`aios models build`: run model builders (export, quantize) into the model dir.

Only argparse is imported at module top: torch and the like load inside the builders.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aios.errors import AIOSError


def add_build_parser(msub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    q = msub.add_parser(
        "build",
        help="make model files with a model builder (ONNX export, INT8 quantization)",
        description=(
            "Build the files that config models with `source = { builder = NAME, ... }` need, "
            "into the model dir (storage.model_dir, default $AIOS_HOME/models). Builders need "
            "build-time packages (torch, ...) that the runtime does not."
        ),
    )
    common(q)
    q.add_argument("names", nargs="*", metavar="NAME", help="builders to run (see --list)")
    q.add_argument("--list", action="store_true", help="list builders and whether they can run")
    q.add_argument("--force", action="store_true", help="rebuild files that already exist")
    q.add_argument("--model-dir", metavar="DIR", help="build here instead of the config's dir")
    q.set_defaults(handler=build)


def _context(args: argparse.Namespace) -> tuple[Any, Path]:
    from aios.config.loader import load_config
    from aios.plugin_manager import build_plugin_manager
    from aios.sources import model_dir

    cfg, path = load_config(args.config)
    ps = build_plugin_manager(
        allow=cfg.plugins.allow,
        block=cfg.plugins.block,
        autoload=cfg.plugins.autoload,
        strict=bool(args.strict_plugins),
    )
    where = (
        Path(args.model_dir).expanduser()
        if args.model_dir
        else model_dir(cfg.storage.model_dir, path.parent)
    )
    return ps, where


def build(args: argparse.Namespace) -> int:
    ps, where = _context(args)
    if args.list or not args.names:
        return _list(ps, where, args.json)
    unknown = [n for n in args.names if n not in ps.builders]
    if unknown:
        known = ", ".join(sorted(ps.builders)) or "none"
        raise AIOSError(
            f"no plugin registers model builder(s) {', '.join(map(repr, unknown))}",
            hint=f"available: {known}",
        )
    from aios.builders import run_builder

    results = []
    for name in args.names:
        if not args.json:
            print(f"building {name} into {where} ...", file=sys.stderr, flush=True)
        res = run_builder(ps.builders[name], where, force=args.force)
        results.append(
            {
                "name": res.name,
                "built": res.built,
                "files": [str(p) for p in res.files],
                "seconds": round(res.seconds, 2),
                "report": res.report,
            }
        )
        if not args.json:
            what = "built" if res.built else "already built (--force rebuilds)"
            details = " ".join(f"{k}={v}" for k, v in res.report.items())
            took = f" in {res.seconds:.1f} s" if res.built else ""
            files = ", ".join(str(p) for p in res.files)
            print(f"{name}: {what}{took}: {files}" + (f"\n  {details}" if details else ""))
    if args.json:
        print(json.dumps({"model_dir": str(where), "builds": results}, indent=2))
    return 0


def _list(ps: Any, where: Path, as_json: bool) -> int:
    rows = []
    for name, cls in sorted(ps.builders.items()):
        try:
            avail = cls().probe()
            available, reason = avail.available, avail.reason
        except Exception as exc:  # a buggy probe must not take the listing down
            available, reason = False, f"probe failed: {type(exc).__name__}: {exc}"
        rows.append(
            {
                "name": name,
                "description": cls.description,
                "outputs": list(cls.outputs),
                "built": all((where / o).is_file() for o in cls.outputs),
                "available": available,
                "reason": reason,
                "requires": cls.requires,
                "plugin": ps.owners.get(("builder", name)),
            }
        )
    failures = [{"plugin": f.plugin, "stage": f.stage, "error": f.error} for f in ps.failures]
    if as_json:
        print(
            json.dumps(
                {"model_dir": str(where), "builders": rows, "plugin_failures": failures},
                indent=2,
                ensure_ascii=False,
            )
        )
        return 0
    print(f"model dir: {where}")
    for r in rows:
        state = "built" if r["built"] else "not built"
        can = "can build" if r["available"] else f"cannot build here: {r['reason']}"
        print(f"{r['name']:<28} {state:<10} {can}")
        print(f"{'':<28} {r['description']} ({r['plugin']})")
        if not r["available"]:
            print(f"{'':<28} needs: {r['requires']}")
    for f in failures:
        print(f"plugin '{f['plugin']}' failed during {f['stage']}: {f['error']}", file=sys.stderr)
    return 0
