"""The CLI's commands; each returns an exit status and raises ``AIOSError`` for the user."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from importlib import resources
from pathlib import Path
from typing import Any

from aios.cli import render
from aios.cli.device_commands import SAMPLE_DOCUMENT
from aios.cli.options import request_options
from aios.errors import AIOSError, ConfigError, InvalidInputError
from aios.files import read_text_file


def dispatch(args: argparse.Namespace, extra: list[str]) -> int:
    if args.command == "config":
        return config_validate(args) if args.config_command == "validate" else config_schema()
    if args.command == "skills":
        return skills(args)
    if args.command == "backends":
        return backends(args)
    if args.command == "run":
        return run(args, extra)
    if args.command == "demo":
        return demo(args)
    if args.command == "explain":
        return explain(args, extra)
    if args.command == "models":
        return models_ls(args)
    if args.command == "report":
        return report_cost(args)
    if args.command == "router":
        from aios.cli import router_commands

        return router_commands.dispatch(args)
    raise AIOSError(f"unknown command '{args.command}'")  # pragma: no cover - argparse guards


def _orchestrator(args: argparse.Namespace) -> Any:
    from aios.orchestrator import Orchestrator

    return Orchestrator.from_file(
        args.config, profile=args.profile, strict=bool(args.strict_plugins)
    )


def _emit_json(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2))


# -- config -------------------------------------------------------------------------------
def config_schema() -> int:
    from aios.config.schema import OEMConfig

    _emit_json(OEMConfig.model_json_schema())
    return 0


def config_validate(args: argparse.Namespace) -> int:
    from aios.config.checks import check_config
    from aios.config.loader import load_config
    from aios.plugin_manager import build_plugin_manager

    report: dict[str, list[str]] = {}
    plugin_sets: dict[tuple[Any, ...], Any] = {}
    for name in args.files:
        try:
            cfg, path = load_config(name)
        except ConfigError as exc:
            report[name] = exc.problems
            continue
        key = (tuple(cfg.plugins.allow or ()), tuple(cfg.plugins.block), cfg.plugins.autoload)
        if key not in plugin_sets:
            plugin_sets[key] = build_plugin_manager(
                allow=cfg.plugins.allow,
                block=cfg.plugins.block,
                autoload=cfg.plugins.autoload,
                strict=bool(args.strict_plugins),
            )
        ps = plugin_sets[key]
        report[name] = check_config(
            cfg,
            backends=ps.backends,
            skills=ps.skills,
            base_dir=path.parent,
            builders=ps.builders,
        )
    bad = {k: v for k, v in report.items() if v}
    if args.json:
        _emit_json({"valid": not bad, "files": report})
    else:
        for name, problems in report.items():
            if problems:
                for p in problems:
                    print(f"{name}: {p}", file=sys.stderr)
            else:
                print(f"{name}: ok")
        if bad:
            n = sum(len(v) for v in bad.values())
            print(f"{n} problem(s) in {len(bad)} file(s)", file=sys.stderr)
    return 2 if bad else 0


# -- listings -----------------------------------------------------------------------------
def skills(args: argparse.Namespace) -> int:
    orch = _orchestrator(args)
    rows = []
    for name in sorted(orch.skill_names()):
        cls = orch.plugins.skills[name]
        rows.append(
            {
                "name": name,
                "kind": cls.kind,
                "description": cls.description,
                "capabilities": sorted(c.value for c in cls.capabilities),
                "sensitivity": cls.sensitivity.value,
                "data_classes": sorted(d.value for d in cls.data_classes),
                "plugin": orch.plugins.owners.get(("skill", name)),
                "input_schema": cls.Input.model_json_schema(),
                "output_schema": cls.Output.model_json_schema(),
            }
        )
    if args.json:
        _emit_json({"skills": rows, "plugin_failures": render.failures(orch)})
    else:
        render.skills_table(rows, orch)
    return 0


def backends(args: argparse.Namespace) -> int:
    orch = _orchestrator(args)
    rows = []
    for name, cls in sorted(orch.plugins.backends.items()):
        avail = orch.probe(name)
        rows.append(
            {
                "name": name,
                "available": avail.available,
                "reason": avail.reason,
                "formats": sorted(f.value for f in cls.formats),
                "enabled_on_profile": name in orch.profile.backends,
                "plugin": orch.plugins.owners.get(("backend", name)),
            }
        )
    if args.json:
        _emit_json({"profile": orch.profile.name, "backends": rows})
    else:
        render.backends_table(rows, orch.profile.name)
    return 0


def models_ls(args: argparse.Namespace) -> int:
    from aios import sources
    from aios.types import Tier

    orch = _orchestrator(args)
    budget = orch.governor.budget_mb()
    rows = []
    for m in orch.config.models:
        row: dict[str, Any] = {
            "id": m.id,
            "tier": m.tier.value,
            "format": m.format.value,
            "parameters_b": m.parameters_b,
            "quantization": m.quantization,
            "config_mb": m.memory_mb,
            "estimated_mb": None,
            "fits": None,
            "note": "",
        }
        if m.tier is Tier.device:
            backend = next((orch.backend(b) for b in m.backends if orch.backend(b)), None)
            try:
                path = sources.resolve(
                    m, orch.base_dir, orch.models.cache_dir, orch.plugins.builders
                )
                est = backend.footprint_mb(m, path) if backend else None
            except AIOSError as exc:
                row["note"] = str(exc)
                est = None
            row["estimated_mb"] = round(est, 1) if est is not None else None
            row["fits"] = (est if est is not None else m.memory_mb) <= budget
        rows.append(row)
    orch.close()
    if args.json:
        _emit_json({"profile": orch.profile.name, "budget_mb": round(budget), "models": rows})
        return 0
    print(f"profile {orch.profile.name}: model budget {budget:.0f} MB")
    for r in rows:
        est = f"{r['estimated_mb']:.0f} MB est." if r["estimated_mb"] is not None else "-"
        fits = {True: "fits", False: "too big", None: ""}[r["fits"]]
        print(
            f"{r['id']:<26} {r['tier']:<6} {r['format']:<5} {r['parameters_b']:>7g}B "
            f"{r['quantization']:<7} config {r['config_mb']:>5} MB  {est:<14} {fits} {r['note']}"
        )
    return 0


# -- running skills -----------------------------------------------------------------------
def _read_text(args: argparse.Namespace, field: str, payload: dict[str, Any]) -> str | None:
    """The text input from --file, --text or a pipe; at most one of them, or --input's."""
    given = [f"--{n}" for n in ("file", "text") if getattr(args, n, None) is not None]
    if field in payload:
        given.insert(0, f"--input's {field!r}")
    if len(given) > 1:
        raise AIOSError(f"{' and '.join(given)} both give the text: use one")
    if args.file:
        path = Path(args.file)
        try:
            return read_text_file(path)
        except ValueError as exc:
            raise AIOSError(f"{path}: {exc}") from None
    if args.text is not None:
        return str(args.text)
    # A pipe is the text only when no option gave it: a script's empty or stray standard
    # input must not replace the text in --input.
    if not given and not sys.stdin.isatty():
        raw = getattr(sys.stdin, "buffer", None)  # a text-only stream when embedded in tests
        try:
            return raw.read().decode("utf-8-sig") if raw else sys.stdin.read()
        except UnicodeDecodeError as exc:
            raise AIOSError(f"standard input is not UTF-8 text (byte {exc.start})") from None
    return None


def _field_options(cls: Any, extra: list[str]) -> dict[str, Any]:
    """Parse ``--FIELD VALUE`` options generated from the skill's input model."""
    parser = argparse.ArgumentParser(prog=f"aios run {cls.name}", add_help=False)
    for fname, field in cls.Input.model_fields.items():
        flag = "--" + fname.replace("_", "-")
        is_list = str(field.annotation).startswith("list")
        parser.add_argument(flag, dest=fname, action="append" if is_list else "store")
    try:
        ns, unknown = parser.parse_known_args(extra)
    except SystemExit:
        raise InvalidInputError(cls.name, ["malformed options: " + " ".join(extra)]) from None
    if unknown:
        flags = ", ".join("--" + f.replace("_", "-") for f in cls.Input.model_fields)
        raise InvalidInputError(
            cls.name, [f"unknown option(s) {' '.join(unknown)}; this skill takes {flags}"]
        )
    return {k: v for k, v in vars(ns).items() if v is not None}


def _payload(orch: Any, args: argparse.Namespace, extra: list[str]) -> tuple[Any, dict[str, Any]]:
    cls = orch.skill_class(args.skill)
    payload: dict[str, Any] = {}
    if args.input:
        try:
            payload = json.loads(args.input)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(cls.name, [f"--input is not valid JSON: {exc}"]) from None
        if not isinstance(payload, dict):
            raise InvalidInputError(cls.name, ["--input must be a JSON object"])
    if cls.file_field and args.file:
        payload[cls.file_field] = str(Path(args.file).expanduser())  # the skill reads it
    # Which fields text fills, to spot --input giving them too.
    text_fields = list(cls.input_from_text("") or {})
    unused = [f"--{n}" for n in ("text", "file") if getattr(args, n, None) is not None]
    if unused and not text_fields and not (cls.file_field and args.file):
        # Dropping it silently would leave the user reading "field required" for what they gave.
        fields = ", ".join(cls.Input.model_fields)
        raise InvalidInputError(
            cls.name,
            [f"{' and '.join(unused)}: this skill takes no text; give --input with {fields}"],
        )
    text = _read_text(args, text_fields[0], payload) if text_fields else None
    if text is not None:
        payload.update(cls.input_from_text(text) or {})
    payload.update(_field_options(cls, extra))
    return cls, payload


def _agent_name(orch: Any, args: argparse.Namespace, extra: list[str]) -> None:
    """`aios run agent NAME ...`: take NAME from the options and check it is an agent."""
    agents = sorted(n for n in orch.skill_names() if orch.plugins.skills[n].kind == "agent")
    if not extra or extra[0].startswith("-"):
        raise AIOSError("which agent? aios run agent NAME ...", hint=f"agents: {', '.join(agents)}")
    name = extra.pop(0)
    if orch.skill_class(name).kind != "agent":
        raise AIOSError(f"'{name}' is a skill, not an agent", hint=f"agents: {', '.join(agents)}")
    args.skill = name


def run(args: argparse.Namespace, extra: list[str]) -> int:
    orch = _orchestrator(args)
    if args.skill == "agent" and "agent" not in orch.skill_names():
        _agent_name(orch, args, extra)
    cls, payload = _payload(orch, args, extra)
    return _invoke(orch, cls.name, payload, args, options=request_options(args))


def explain(args: argparse.Namespace, extra: list[str]) -> int:
    import os

    if args.offline:
        os.environ["AIOS_OFFLINE"] = "1"
    orch = _orchestrator(args)
    try:
        if args.skill == "agent" and "agent" not in orch.skill_names():
            _agent_name(orch, args, extra)
        cls, payload = _payload(orch, args, extra)
        record = orch.explain(cls.name, payload, request_options(args))
    finally:
        orch.close()
    if args.json:
        _emit_json(record.model_dump(mode="json"))
    else:
        render.explanation(record)
    return 0


def report_cost(args: argparse.Namespace) -> int:
    import time

    from aios.cloud import ledger as ledger_mod

    since = time.time() - args.since_hours * 3600 if args.since_hours is not None else None
    if args.log:
        rep = ledger_mod.report_from_log(Path(args.log), since)
        source = args.log
    else:
        path = Path(args.ledger) if args.ledger else ledger_mod.default_path()
        led = ledger_mod.Ledger(path, create=False)
        try:
            rep = led.report(since)
        finally:
            led.close()
        source = str(path)
    data = {
        "source": source,
        "requests": rep.requests,
        "on_device": rep.on_device,
        "in_cloud": rep.in_cloud,
        "device_share": round(rep.device_share, 4),
        "spent_cny": round(rep.spent_cny, 6),
        "all_cloud_cny": round(rep.all_cloud_cny, 6),
        "saved_cny": round(rep.saved_cny, 6),
    }
    if args.json:
        _emit_json(data)
    else:
        render.cost(data)
    return 0


def demo(args: argparse.Namespace) -> int:
    if args.service:
        from aios.cli.demo_service import demo_service

        return demo_service(args)
    orch = _orchestrator(args)
    sample = resources.files("aios.data").joinpath(SAMPLE_DOCUMENT).read_text(encoding="utf-8")
    if not args.json:
        print(f"Summarizing the bundled sample ({len(sample)} characters):\n", file=sys.stderr)
    return _invoke(orch, "summarize", {"text": sample, "length": "medium"}, args, options=None)


def _invoke(orch: Any, skill: str, payload: dict[str, Any], args: Any, options: Any) -> int:
    cancel = threading.Event()
    try:
        if getattr(args, "stream", False) and not args.json:
            result = None
            for event in orch.stream(skill, payload, options=options, cancel=cancel):
                if event.delta is not None:
                    print(event.delta, end="", flush=True)
                elif event.step is not None:
                    render.step_event(event.step)
                elif event.result is not None:
                    result = event.result
            print()
            assert result is not None
            render.record(result.record)
            return _exit_code(result)
        result = orch.invoke(
            skill, payload, options=options, cancel=cancel, on_event=render.step_event
        )
    except KeyboardInterrupt:
        cancel.set()
        raise
    finally:
        orch.close()
    if args.json:
        _emit_json(result.to_dict())
    else:
        render.output(result.output, skill)
        render.record(result.record)
    return _exit_code(result)


EXIT_PARTIAL = 3


def _exit_code(result: Any) -> int:
    """0, or EXIT_PARTIAL when an agent stopped at a failed step: scripts must not take a
    partial result (printed all the same) for a complete one."""
    return EXIT_PARTIAL if getattr(result.output, "status", None) == "partial" else 0
