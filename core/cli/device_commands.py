"""`aios simulate TRACE`: replay a device-state trace and show what the policy decides at each step.

Nothing runs: each step is ``Orchestrator.explain`` on the state the trace holds at that time.
This module is imported to build the parser, so it imports nothing heavy at the top.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from importlib import resources
from typing import Any

from aios.cli.options import add_routing_arguments, request_options

SAMPLE_DOCUMENT = "sample_article.txt"
WHY_STAGES = ("tier", "device", "model")


def add_parser(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser(
        "simulate",
        help="replay a device-state trace: routing, model and power mode at each step",
        description="Steps through TRACE (JSON lines, or a .json array, of points with t and "
        "mem_available_mb, temp_c, battery_pct, charging, online) and prints the device state "
        "and the decision at each point, as `aios explain` would make it. Nothing runs.",
    )
    common(p)
    p.add_argument("trace", metavar="TRACE", help="trace file (.jsonl, or .json)")
    p.add_argument("--skill", default="summarize", help="the skill to decide for (summarize)")
    p.add_argument(
        "--text", metavar="T", help="the request's text (default: the bundled sample document)"
    )
    add_routing_arguments(p)
    p.set_defaults(handler=simulate)


def simulate(args: argparse.Namespace) -> int:
    from aios.config.loader import load_config
    from aios.device import DeviceMonitor, SimulatedProvider, load_trace
    from aios.orchestrator import Orchestrator

    trace = load_trace(args.trace)
    opts = request_options(args)
    cfg, path = load_config(args.config)
    sim = SimulatedProvider(trace)
    monitor = DeviceMonitor(cfg.device_policy, [sim], cache_s=0, source=f"trace {trace.path.name}")
    orch = Orchestrator(
        cfg,
        config_path=path,
        profile=args.profile,
        strict=bool(args.strict_plugins),
        ledger=False,  # a replay has spent nothing today
        device=monitor,
    )
    try:
        cls = orch.skill_class(args.skill)
        text = args.text
        if text is None:
            text = resources.files("aios.data").joinpath(SAMPLE_DOCUMENT).read_text("utf-8")
        payload: dict[str, Any] = cls.input_from_text(text) or {}
        steps = []
        for t in trace.times:
            sim.seek(t)
            state = monitor.refresh()
            record = orch.explain(cls.name, payload, opts)
            steps.append(
                {
                    "t": t,
                    "state": state.to_dict(),
                    "power_mode": state.power_mode,
                    "tier": record.tier.value if record.tier else None,
                    "model": record.model,
                    "backend": record.backend,
                    "reasons": [d.model_dump(mode="json") for d in record.reasons],
                }
            )
    finally:
        orch.close()
    if args.json:
        out = {
            "trace": str(trace.path),
            "skill": cls.name,
            "profile": orch.profile.name,
            "steps": steps,
        }
        print(json.dumps(out, ensure_ascii=False, indent=2))
    else:
        _table(str(trace.path), cls.name, orch.profile.name, steps)
    return 0


def _fmt(value: Any, spec: str = "", unit: str = "") -> str:
    if value is None:
        return "?"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value:{spec}}{unit}"


def _table(trace: str, skill: str, profile: str, steps: list[dict[str, Any]]) -> None:
    print(f"trace {trace}: {len(steps)} steps, skill {skill}, profile {profile}")
    head = (
        f"{'t':>7}  {'mem MB':>7}  {'temp °C':>7}  {'batt':>5}  {'plugged':<7}  {'online':<6}  "
        f"{'power':<11}  {'tier':<6}  model"
    )
    print(head)
    for step in steps:
        s = step["state"]
        where = step["model"] or "no model (fallback)"
        if step["backend"]:
            where += f" on {step['backend']}"
        print(
            f"{_fmt(step['t'], 'g', 's'):>7}  {_fmt(s['mem_available_mb'], '.0f'):>7}  "
            f"{_fmt(s['temp_c'], '.1f'):>7}  {_fmt(s['battery_pct'], 'g', '%'):>5}  "
            f"{_fmt(s['charging']):<7}  {_fmt(s['online']):<6}  {step['power_mode']:<11}  "
            f"{step['tier'] or '-':<6}  {where}"
        )
        for d in step["reasons"]:
            if d["stage"] in WHY_STAGES and d["accepted"]:
                print(f"{'':>9}{d['stage']:<7} {d['reason']}")
