"""`aios index add PATH` and `aios index status`: the user's on-device search index.

`add` runs the `index` skill through the orchestrator (so the encoder and image model load
through the memory governor and the request is recorded), with a progress bar on stderr.
Imported to build the parser, so nothing heavy at the top.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

USER_HELP = "user profile whose index to use (default: default)"


def add_parser(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser("index", help="the on-device search index: add folders, show status")
    isub = p.add_subparsers(dest="index_command", required=True, metavar="ACTION")
    q = isub.add_parser(
        "add",
        help="index a folder of documents and photos (incremental, resumable)",
        description="Adds new files, re-indexes changed ones, follows moves and drops deleted "
        "ones. Killed midway, the next run resumes where it stopped. Unreadable, huge or "
        "malformed files are skipped with their reason.",
    )
    common(q)
    q.add_argument("path", metavar="PATH", help="folder to index (with its subfolders)")
    q.add_argument("--user", default="default", metavar="NAME", help=USER_HELP)
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.set_defaults(handler=index_add)
    q = isub.add_parser("status", help="what the index holds: items, chunks, skipped files")
    common(q)
    q.add_argument("--user", default="default", metavar="NAME", help=USER_HELP)
    q.add_argument("--skipped", action="store_true", help="list skipped files and why")
    q.set_defaults(handler=index_status)


class ProgressBar:
    """A one-line bar on stderr when it is a terminal; a line every few seconds otherwise.

    Counts files by default; ``unit``/``scale`` show other amounts (MB of a download) and
    ``verb`` names the work in the non-terminal lines.
    """

    def __init__(
        self,
        enabled: bool = True,
        interval_s: float = 5.0,
        *,
        unit: str = "files",
        verb: str = "indexed",
        scale: float = 1.0,
    ) -> None:
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.interval_s = interval_s
        self.unit, self.verb, self.scale = unit, verb, scale
        self._last = 0.0
        self._started = time.monotonic()

    def _n(self, n: float) -> str:
        return f"{n / self.scale:.1f}" if self.scale != 1.0 else str(n)

    def __call__(self, done: int, total: int, what: str) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        final = done >= total
        if not final and now - self._last < (0.1 if self.tty else self.interval_s):
            return
        self._last = now
        rate = done / self.scale / max(now - self._started, 1e-6)
        pct = 100.0 * done / total if total else 100.0
        amount = f"{self._n(done)}/{self._n(total)}"
        if self.tty:
            width = 30
            fill = int(width * done / total) if total else width
            name = what[-40:]
            line = f"\r[{'#' * fill}{'.' * (width - fill)}] {amount} {pct:3.0f}% "
            sys.stderr.write(f"{line}{rate:5.1f} {self.unit}/s  {name:<40}")
            if final:
                sys.stderr.write("\n")
        else:
            sys.stderr.write(
                f"{self.verb} {amount} {self.unit} ({pct:.0f}%), {rate:.1f} {self.unit}/s\n"
            )
        sys.stderr.flush()


def index_add(args: argparse.Namespace) -> int:
    from aios.cli import render
    from aios.orchestrator import Orchestrator

    orch = Orchestrator.from_file(
        args.config, profile=args.profile, strict=bool(args.strict_plugins)
    )
    cancel = threading.Event()
    bar = ProgressBar(enabled=not (args.quiet or args.json))
    try:
        result = orch.invoke(
            "index", {"path": args.path, "user": args.user}, cancel=cancel, on_progress=bar
        )
    except KeyboardInterrupt:
        # Everything committed so far stays; the next `aios index add` resumes from there.
        cancel.set()
        raise
    finally:
        orch.close()
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
    else:
        render.index_report(result.output.model_dump())
        render.record(result.record)
    return 0


def index_status(args: argparse.Namespace) -> int:
    from aios.config.loader import load_config
    from aios.index.paths import index_path
    from aios.index.store import IndexStore

    cfg, path = load_config(args.config)
    db = index_path(cfg, path.parent if path else Path.cwd(), args.user)
    if not db.exists():
        stats: dict[str, Any] = {"path": str(db), "exists": False}
    else:
        with IndexStore(db) as store:
            stats = {"path": str(db), "exists": True, **store.stats()}
            if args.skipped:
                stats["skipped_files"] = [{"path": p, "reason": r} for p, r in store.skipped()]
    if args.json:
        print(json.dumps(stats, ensure_ascii=False, indent=2))
        return 0
    if not stats["exists"]:
        print(f"no index yet for user '{args.user}' ({db}); run `aios index add PATH`")
        return 0
    items = stats["items"]
    print(f"index     {db}")
    print(f"items     {items.get('doc', 0)} documents, {items.get('photo', 0)} photos")
    print(f"chunks    {stats['chunks']} (embedded with {stats['embed_model']})")
    print(f"skipped   {stats['skipped']} files" + ("" if args.skipped else " (--skipped lists)"))
    print(f"size      {stats['db_bytes'] / 1e6:.1f} MB")
    if stats.get("last_indexed_at"):
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stats["last_indexed_at"]))
        print(f"updated   {when}")
    for row in stats.get("skipped_files", []):
        print(f"  {row['path']}: {row['reason']}")
    return 0
