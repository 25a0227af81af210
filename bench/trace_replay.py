"""Replay a multi-app request trace on real models and report what the governor and queue did.

Several apps call aios at once, as on a phone: a keyboard (small model, foreground), notes
(summaries, foreground), mail (summaries, background), an assistant whose user stops every
other answer, and a gallery (captions, background). Each request starts at its trace time in
its own thread, on the real models of the embedded reference config (llama.cpp, CPU).

Two scenarios, each in its own process (peak RSS is per process), printed side by side:

* ``reference``: reference.toml as shipped (4 GB model budget, live /proc/meminfo);
* ``sim-8gb``: an 8 GB Android phone (4 GB OS + 3 GB keep-alive reserve: 1 GB for models,
  256 MB always kept free) whose free memory follows ``bench/traces/pressure_8gb.jsonl``
  (SIMULATED: a camera app takes memory from t=10 s to t=24 s).

Reported: peak process RSS above the pre-load baseline against the memory budget in force at
that moment, loads, evictions and pressure sheds, queue wait p50/p99 per priority, user
cancellations honoured (stream ended within one token) and how fast, typed refusals, and OOM
(a scenario process killed by the kernel). Run from the repository root::

    python bench/trace_replay.py [--speed 1.0] [--json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from _common import err, percentile

HERE = Path(__file__).resolve().parent
REQUESTS = HERE / "traces" / "multi_app.jsonl"
PRESSURE = HERE / "traces" / "pressure_8gb.jsonl"
SCENARIOS = ("reference", "sim-8gb")


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def load_requests(path: Path) -> list[dict[str, Any]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            rows.append(json.loads(line))
    return sorted(rows, key=lambda r: r["t"])


class PhoneMemory:
    """MemAvailable of a simulated phone: the trace's free memory less what aios holds now."""

    name = "simulated-phone-memory"

    def __init__(self, provider: Any, held_mb: Any) -> None:
        self.provider = provider
        self.held_mb = held_mb

    def read(self) -> dict[str, Any]:
        readings = dict(self.provider.read())
        free = readings.get("mem_available_mb")
        if free is not None:
            readings["mem_available_mb"] = max(0.0, free - self.held_mb())
        return readings


def build(scenario: str, speed: float) -> Any:
    from aios.config.loader import load_config
    from aios.device import DeviceMonitor
    from aios.device.trace import SimulatedProvider, load_trace
    from aios.orchestrator import Orchestrator

    config, path = load_config(None)
    if scenario == "reference":
        return Orchestrator(config, config_path=path, strict=True, ledger=False)
    profile = config.profile().model_copy(
        update={
            "name": "sim-8gb",
            "ram_mb": 8192,
            "os_reserve_mb": 4096,
            "keepalive_reserve_mb": 3072,
            "min_free_mb": 256,
        }
    )
    config = config.model_copy(
        update={
            "profiles": [*config.profiles, profile],
            "device": config.device.model_copy(update={"profile": "sim-8gb"}),
        }
    )
    holder: list[Any] = []
    memory = PhoneMemory(
        SimulatedProvider(load_trace(PRESSURE), speed=speed),
        lambda: holder[0].governor.used_mb() if holder else 0.0,
    )
    # cache_s=0: the simulated MemAvailable depends on what aios holds this very moment.
    device = DeviceMonitor(
        config.device_policy, [memory], source="trace pressure_8gb.jsonl", cache_s=0.0
    )
    orch = Orchestrator(config, config_path=path, strict=True, device=device, ledger=False)
    holder.append(orch)
    return orch


class Sampler(threading.Thread):
    """RSS above baseline against the budget in force, every 10 ms."""

    def __init__(self, orch: Any, baseline: float) -> None:
        super().__init__(daemon=True)
        self.orch, self.baseline = orch, baseline
        self.stop = threading.Event()
        self.peak_rss = self.peak_held = 0.0
        self.worst_over = float("-inf")  # max of (RSS above baseline − budget then)
        self.min_budget = float("inf")

    def run(self) -> None:
        gov = self.orch.governor
        while not self.stop.wait(0.01):
            used = rss_mb() - self.baseline
            budget = gov.budget_mb()
            self.peak_rss = max(self.peak_rss, used)
            self.peak_held = max(self.peak_held, gov.used_mb())
            self.min_budget = min(self.min_budget, budget)
            self.worst_over = max(self.worst_over, used - budget)


def call(orch: Any, row: dict[str, Any], out: dict[str, Any]) -> None:
    from aios.errors import AIOSError, CancelledError
    from aios.routing.policy import RequestOptions

    opts = RequestOptions(model=row.get("model"), priority=row["priority"], app=row["app"])
    cancel = threading.Event()
    stop_after = row.get("cancel_after_tokens")
    seen = extra = 0
    cancelled_at = None
    try:
        for event in orch.stream(row["skill"], row["input"], options=opts, cancel=cancel):
            if event.result is not None:
                rec = event.result.record
                out.update(status="ok", queue_ms=rec.queue_ms, model=rec.model)
            elif cancelled_at is not None:
                extra += 1
            else:
                seen += 1
                if stop_after and seen >= stop_after:
                    cancel.set()
                    cancelled_at = time.perf_counter()
    except CancelledError:
        out.update(
            status="cancelled",
            tokens_after_cancel=extra,
            stop_ms=(time.perf_counter() - (cancelled_at or time.perf_counter())) * 1000,
        )
    except AIOSError as exc:
        out.update(status="refused", code=exc.code, error=str(exc))


def run_scenario(scenario: str, speed: float) -> dict[str, Any]:
    import aios.log

    aios.log.configure(level="error")
    rows = load_requests(REQUESTS)
    orch = build(scenario, speed)
    for backend in {b for m in orch.config.models for b in m.backends}:
        orch.probe(backend)  # runtime libraries load now, so they are not counted as models
    baseline = rss_mb()
    sampler = Sampler(orch, baseline)
    sampler.start()
    results: list[dict[str, Any]] = [dict(row) for row in rows]
    threads = []
    t0 = time.perf_counter()
    for row, out in zip(rows, results, strict=True):
        delay = row["t"] / speed - (time.perf_counter() - t0)
        if delay > 0:
            time.sleep(delay)
        th = threading.Thread(target=call, args=(orch, row, out))
        th.start()
        threads.append(th)
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    sampler.stop.set()
    sampler.join()
    gov = orch.governor
    summary = {
        "scenario": scenario,
        "simulated": scenario != "reference",
        "requests": len(results),
        "ok": sum(r.get("status") == "ok" for r in results),
        "cancelled_by_user": sum(r.get("status") == "cancelled" for r in results),
        "refused": {},
        "wall_s": round(wall, 1),
        "budget_mb_max": round(orch.profile.model_budget_mb),
        "budget_mb_min": round(sampler.min_budget),
        "peak_rss_above_baseline_mb": round(sampler.peak_rss),
        "peak_accounted_mb": round(sampler.peak_held),
        "worst_rss_minus_budget_mb": round(sampler.worst_over),
        "loads": orch.models.loads,
        "evictions": gov.evictions,
        "pressure_sheds": gov.shed_count,
    }
    for r in results:
        if r.get("status") == "refused":
            summary["refused"][r["code"]] = summary["refused"].get(r["code"], 0) + 1
    for prio in ("foreground", "background"):
        waits = [r["queue_ms"] for r in results if r["priority"] == prio and "queue_ms" in r]
        for q in (50, 99):
            summary[f"queue_ms_{prio}_p{q}"] = round(percentile(waits, q), 1) if waits else None
    asked = [r for r in results if r.get("cancel_after_tokens")]
    honoured = [
        r for r in asked if r.get("status") == "cancelled" and r["tokens_after_cancel"] <= 1
    ]
    stops = [r["stop_ms"] for r in honoured]
    summary["cancellations_asked"] = len(asked)
    summary["cancellations_honoured"] = len(honoured)
    summary["cancel_stop_ms_max"] = round(max(stops), 1) if stops else None
    orch.close()
    return summary


ROWS = [
    ("requests", "requests"),
    ("ok", "ok"),
    ("cancelled_by_user", "cancelled by the user"),
    ("refused", "refused (typed error)"),
    ("wall_s", "wall time, s"),
    ("budget_mb_max", "model budget, MB"),
    ("budget_mb_min", "lowest budget in force, MB"),
    ("peak_rss_above_baseline_mb", "peak RSS above baseline, MB"),
    ("peak_accounted_mb", "peak governor-accounted, MB"),
    ("worst_rss_minus_budget_mb", "worst RSS − budget then, MB"),
    ("loads", "model loads"),
    ("evictions", "evictions (admission)"),
    ("pressure_sheds", "unloads under pressure"),
    ("queue_ms_foreground_p50", "queue wait fg p50, ms"),
    ("queue_ms_foreground_p99", "queue wait fg p99, ms"),
    ("queue_ms_background_p50", "queue wait bg p50, ms"),
    ("queue_ms_background_p99", "queue wait bg p99, ms"),
    ("cancellations_honoured", "cancellations honoured"),
    ("cancel_stop_ms_max", "cancel → stopped, max ms"),
    ("oom", "OOM kills"),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--speed", type=float, default=1.0, help="trace time compression")
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    ap.add_argument("--scenario", choices=SCENARIOS, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.scenario:  # the child process
        print(json.dumps(run_scenario(args.scenario, args.speed)))
        return 0
    summaries = []
    for scenario in SCENARIOS:
        err(f"replaying {REQUESTS.name} on {scenario} ...")
        proc = subprocess.run(
            [sys.executable, __file__, "--scenario", scenario, "--speed", str(args.speed)],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            oom = proc.returncode in (-9, 137)
            err(proc.stderr[-2000:])
            summaries.append({"scenario": scenario, "oom": int(oom), "rc": proc.returncode})
            continue
        summary = json.loads(proc.stdout.strip().splitlines()[-1])
        summary["oom"] = 0
        summaries.append(summary)
    if args.json:
        print(json.dumps({"trace": REQUESTS.name, "speed": args.speed, "scenarios": summaries}))
        return 0
    width = 30
    print(f"{'':{width}}" + "".join(f"{s['scenario']:>18}" for s in summaries))
    for key, label in ROWS:
        cells = []
        for s in summaries:
            value = s.get(key, "-")
            if key == "cancellations_honoured" and "cancellations_asked" in s:
                value = f"{value}/{s['cancellations_asked']}"
            if isinstance(value, dict):
                value = ", ".join(f"{k} {v}" for k, v in value.items()) or "0"
            cells.append(f"{value!s:>18}")
        print(f"{label:{width}}" + "".join(cells))
    print("sim-8gb memory is SIMULATED (trace); the models, threads and RSS are real.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
