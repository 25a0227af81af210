"""`aios` entry point: parse, dispatch, and turn every ``AIOSError`` into a clean message.

Heavy modules load only in the commands that need them, so `aios --help` stays fast whatever
plugins are installed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from aios.cli import (
    delivery_commands,
    device_commands,
    index_commands,
    model_commands,
    residency_commands,
    service_commands,
)
from aios.cli.options import add_routing_arguments, positive_hours
from aios.errors import AIOSError

EXIT_INTERRUPTED = 130


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="OEM config (default: embedded reference.toml)")
    p.add_argument("--profile", metavar="NAME", help="device profile (default: the config's)")
    p.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
    p.add_argument(
        "--strict-plugins", action="store_true", help="fail on any plugin error (tests, CI)"
    )
    _log_level(p, argparse.SUPPRESS)


def _log_level(p: argparse.ArgumentParser, default: Any) -> None:
    # SUPPRESS in subcommands keeps a level given before the subcommand from being reset.
    p.add_argument(
        "--log-level",
        metavar="LEVEL",
        default=default,
        help="debug, info, warning, error (default: $AIOS_LOG_LEVEL or info)",
    )


def _request_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("skill")
    p.add_argument("--file", metavar="F", help="read the text input from a file (image: the photo)")
    p.add_argument("--text", metavar="T", help="the text input")
    p.add_argument("--input", metavar="JSON", help="the whole input as a JSON object")
    p.add_argument("--model", metavar="ID", help="run on this model of the matrix")
    add_routing_arguments(p)


def _report_parser(sub: Any) -> None:
    p = sub.add_parser("report", help="reports over the request ledger")
    rep = p.add_subparsers(dest="report_command", required=True, metavar="REPORT")
    p = rep.add_parser("cost", help="cloud spend, all-cloud cost, share kept on device")
    p.add_argument(
        "--ledger",
        metavar="DB",
        help="request ledger (default: $AIOS_LEDGER or $AIOS_HOME/ledger.sqlite)",
    )
    p.add_argument(
        "--log", metavar="FILE", help="read aios.request events from a JSON-lines log instead"
    )
    p.add_argument("--since-hours", type=positive_hours, metavar="H", help="only the last H hours")
    p.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
    _log_level(p, argparse.SUPPRESS)


def _router_parser(sub: Any) -> None:
    p = sub.add_parser("router", help="fit and evaluate the learned difficulty router")
    rsub = p.add_subparsers(dest="router_command", required=True, metavar="ACTION")
    actions = (("fit", "fit a router on labeled prompts"), ("eval", "its quality-cost curve"))
    for action, helptext in actions:
        q = rsub.add_parser(action, help=helptext)
        q.add_argument(
            "--data",
            required=True,
            metavar="CSV",
            help="rows of prompt, device_correct, cloud_correct",
        )
        q.add_argument("--prompt-col", default="prompt", metavar="NAME")
        q.add_argument("--device-col", default="device_correct", metavar="NAME")
        q.add_argument("--cloud-col", default="cloud_correct", metavar="NAME")
        q.add_argument(
            "--exclude", metavar="JSONL", help="prompts to leave out (e.g. contaminated ones)"
        )
        q.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
        _log_level(q, argparse.SUPPRESS)
        if action == "fit":
            q.add_argument("--out", required=True, metavar="FILE", help="router artifact to write")
            q.add_argument("--seed", type=int, default=0)
            q.add_argument(
                "--embeddings",
                action="store_true",
                help="add on-device sentence embeddings as features",
            )
        else:
            q.add_argument("--router", required=True, metavar="FILE", help="a fitted router")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aios", description="On-device AI layer: skills, model matrix, device/cloud routing."
    )
    _log_level(parser, None)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("skills", help="list skills with their contracts")
    _common(p)
    p = sub.add_parser("backends", help="list backends, their availability and why")
    _common(p)

    cfg = sub.add_parser("config", help="validate an OEM config or print its JSON Schema")
    cfg_sub = cfg.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    p = cfg_sub.add_parser("validate", help="report every problem in config files")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
    p.add_argument("--strict-plugins", action="store_true", help="fail on any plugin error")
    _log_level(p, argparse.SUPPRESS)
    _log_level(
        cfg_sub.add_parser("schema", help="print the config's JSON Schema"), argparse.SUPPRESS
    )

    p = sub.add_parser(
        "run",
        help="run a skill or agent: aios run SKILL|agent NAME [--file F | --text T | stdin] "
        "[--FIELD VALUE ...]",
        description="Input comes from --file, --text or stdin (into the skill's text field), "
        "--input JSON, and one --FIELD option per field of the skill's input model. Exit "
        "status: 0 done, 1 error, 2 bad input or config, 3 an agent's partial result.",
    )
    _common(p)
    _request_options(p)
    p.add_argument("--stream", action="store_true", help="print text as it is generated")

    p = sub.add_parser(
        "explain",
        help="show where a request would run, and why, without running it",
        description="Takes the same input options as `aios run`.",
    )
    _common(p)
    _request_options(p)
    p.add_argument("--offline", action="store_true", help="decide as if the device were offline")

    p = sub.add_parser("models", help="the model matrix: footprints, fit, residency")
    msub = p.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    q = msub.add_parser("ls", help="list models with estimated footprint and budget fit")
    _common(q)
    model_commands.add_build_parser(msub, _common)
    delivery_commands.add_parsers(msub, _common)
    residency_commands.add_parsers(msub, _common)

    _report_parser(sub)
    _router_parser(sub)
    device_commands.add_parser(sub, _common)
    index_commands.add_parser(sub, _common)
    service_commands.add_parser(sub, _common)

    p = sub.add_parser("demo", help="summarize the bundled sample document (the main job)")
    _common(p)
    p.add_argument("--stream", action="store_true", help="print the summary as it is generated")
    p.add_argument(
        "--service",
        action="store_true",
        help="run it as a device does: start `aios serve`, call it over HTTP, stop it",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command not in ("run", "explain"):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")

    from aios import log
    from aios.cli import commands

    try:
        log.configure(args.log_level)
    except ValueError as exc:
        parser.error(str(exc))
    as_json = bool(getattr(args, "json", False))
    try:
        _check_home()
        handler = getattr(args, "handler", None)  # commands that register their own
        return handler(args) if handler else commands.dispatch(args, extra)
    except AIOSError as exc:
        _report(exc, as_json)
        return exc.exit_code
    except KeyboardInterrupt:
        _report(AIOSError("interrupted"), as_json)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return 0
    except OSError as exc:
        # A path the user gave that cannot be read or written: their input, not our bug.
        where = f"{exc.filename}: " if exc.filename else ""
        _report(AIOSError(f"{where}{exc.strerror or exc}"), as_json)
        return AIOSError.exit_code


def _check_home() -> None:
    import os

    from aios.sources import aios_home

    home = aios_home()
    if home.exists() and not home.is_dir():
        where = "AIOS_HOME" if os.environ.get("AIOS_HOME") else "aios's home folder"
        raise AIOSError(f"{where} {home} is not a directory")


def _report(exc: AIOSError, as_json: bool) -> None:
    if as_json:
        body: dict[str, Any] = {"code": exc.code, "message": exc.message}
        if exc.hint:
            body["hint"] = exc.hint
        problems = getattr(exc, "problems", None)
        if problems:
            body["problems"] = problems
        print(json.dumps({"error": body}, ensure_ascii=False))
    else:
        print(f"aios: error: {exc}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
