"""Human-readable output for the CLI (``--json`` bypasses all of this)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from aios.record import ExecutionRecord


def failures(orch: Any) -> list[dict[str, str]]:
    return [{"plugin": f.plugin, "stage": f.stage, "error": f.error} for f in orch.plugins.failures]


def skills_table(rows: list[dict[str, Any]], orch: Any) -> None:
    width = max((len(r["name"]) for r in rows), default=4)
    for r in rows:
        caps = ", ".join(r["capabilities"]) or "no model"
        print(
            f"{r['name']:<{width}}  {r['kind']:<5}  [{caps}; {r['sensitivity']}]  "
            f"{r['description']}  (plugin {r['plugin']})"
        )


def backends_table(rows: list[dict[str, Any]], profile: str) -> None:
    width = max((len(r["name"]) for r in rows), default=4)
    for r in rows:
        state = "available" if r["available"] else "unavailable"
        enabled = "" if r["enabled_on_profile"] else f" (not enabled on profile '{profile}')"
        print(
            f"{r['name']:<{width}}  {state:<11}  {'/'.join(r['formats']):<6}  "
            f"{r['reason']}{enabled}"
        )


def output(out: BaseModel, skill: str | None = None) -> None:
    output_dict(out.model_dump(mode="json"), skill)


def output_dict(data: dict[str, Any], skill: str | None = None) -> None:
    special = _BY_SKILL.get(skill or "")
    if special is None and {"status", "plan", "steps"} <= data.keys():
        special = agent_result
    if special is not None:
        special(data)
        return
    # The first text field is the answer; the rest are details about it.
    main = next((k for k, v in data.items() if isinstance(v, str)), None)
    if main is not None:
        print(data.pop(main))
        print()
    for k, v in data.items():
        print(f"{k}: {v}")


def record(rec: ExecutionRecord) -> None:
    err = sys.stderr
    print("\n-- execution record --", file=err)
    where = f"{rec.model or 'no model'}"
    if rec.backend:
        where += f" on {rec.backend}"
    if rec.tier:
        where += f", {rec.tier.value} tier"
    if rec.fallback:
        where += f", fallback: {rec.fallback}"
    print(f"skill     {rec.skill} ({rec.kind}), request {rec.request_id}", file=err)
    print(f"ran on    {where}", file=err)
    timing = f"{rec.latency_ms:,.0f} ms"
    parts = []
    if rec.load_ms:
        parts.append(f"model load {rec.load_ms:,.0f} ms")
    if rec.queue_ms >= 1:  # sub-millisecond: the slot was free
        parts.append(f"queued {rec.queue_ms:,.0f} ms")
    if rec.ttft_ms is not None:
        parts.append(f"first token {rec.ttft_ms:,.0f} ms")
    parts.append(f"aios overhead {rec.overhead_ms:.2f} ms")
    print(f"latency   {timing} ({', '.join(parts)})", file=err)
    print(
        f"tokens    {rec.tokens_in} in / {rec.tokens_out} out in {rec.model_calls} call(s); "
        f"cost {rec.cost_cny:.4f} CNY",
        file=err,
    )
    print("why", file=err)
    for d in rec.reasons:
        mark = "+" if d.accepted else "-"
        print(f"  {mark} {d.stage:<8} {d.choice or '':<22} {d.reason}", file=err)


def explanation(rec: ExecutionRecord) -> None:
    where = rec.model or "no model (the skill's fallback)"
    if rec.backend:
        where += f" on {rec.backend}"
    if rec.tier:
        where += f", {rec.tier.value} tier"
    print(f"skill {rec.skill} would run on {where}")
    print("why")
    for d in rec.reasons:
        mark = "+" if d.accepted else "-"
        print(f"  {mark} {d.stage:<8} {d.choice or '':<22} {d.reason}")


def cost(data: dict[str, Any]) -> None:
    print(
        f"requests        {data['requests']} ({data['on_device']} on device, "
        f"{data['in_cloud']} in the cloud)"
    )
    print(f"kept on device  {data['device_share']:.1%}")
    print(f"cloud spend     {data['spent_cny']:.4f} CNY")
    print(f"all-cloud cost  {data['all_cloud_cny']:.4f} CNY (saved {data['saved_cny']:.4f} CNY)")
    print(f"source          {data['source']}")


def search_results(data: dict[str, Any]) -> None:
    understood = {k: v for k, v in data["understood"].items() if v and k != "spans"}
    if understood:
        print("understood: " + json.dumps(understood, ensure_ascii=False))
    if not data["results"]:
        print("no results")
    for n, r in enumerate(data["results"], 1):
        when = f"  {r['taken_at']}" if r["taken_at"] else ""
        place = f"  @ {r['place']}" if r["place"] else ""
        print(f"{n:>2}. [{r['kind']}] {r['path']}{when}{place}")
        print(f"    score {r['score']:.4f}  why: {', '.join(r['why']) or '-'}")
        if r["tags"]:
            print(f"    tags: {', '.join(r['tags'])}")
        if r["snippet"]:
            print(f"    {r['snippet']}")


def index_report(data: dict[str, Any]) -> None:
    print(
        f"indexed {data['root']}: {data['new']} new, {data['changed']} changed, "
        f"{data['moved']} moved, {data['deleted']} deleted, {data['unchanged']} unchanged, "
        f"{len(data['skipped'])} skipped, {data['ignored']} ignored; {data['chunks']} chunks "
        f"in {data['seconds']:.1f} s"
        + (" (cancelled: run again to resume)" if data["cancelled"] else "")
    )
    print(f"photos: {data['photo_tags']}")
    for s in data["skipped"]:
        print(f"  skipped {s['path']}: {s['reason']}")


def image_labels(data: dict[str, Any]) -> None:
    print(f"{data.get('file')}: {data.get('width')}x{data.get('height')}")
    for t in data.get("labels", []):
        print(f"  {t['score']:.3f}  {t['label']}  {t.get('label_zh', '')}")


def step_event(event: dict[str, Any]) -> None:
    """One line per agent step as it starts and ends (stderr: stdout is the answer)."""
    head = f"[step {event['step']}/{event['of']}] {event['skill']:<10}"
    status = event["status"]
    if status == "running":
        print(f"{head} running", file=sys.stderr, flush=True)
        return
    where = ", ".join(str(x) for x in (event.get("tier"), event.get("model")) if x)
    detail = f" ({where}, {event['latency_ms']:,.0f} ms)" if where else ""
    tail = f": {event['error']}" if event.get("error") else ""
    print(f"{head} {status}{detail}{tail}", file=sys.stderr, flush=True)


def agent_result(data: dict[str, Any]) -> None:
    """An agent's answer fields, then how its plan went."""
    common = {"status", "error", "plan", "steps"}
    for k, v in data.items():
        if k in common or v in (None, [], ""):
            continue
        if isinstance(v, list) and v and isinstance(v[0], dict):
            print(f"{k}:")
            for row in v:
                print("  " + ", ".join(f"{a}={b}" for a, b in row.items()))
        elif isinstance(v, list):
            print(f"{k}: {', '.join(str(x) for x in v)}")
        else:
            print(f"{k}: {v}")
    plan = data["plan"]
    print(f"\nplan ({plan['planner']}{', ' + plan['intent'] if plan.get('intent') else ''}):")
    for step in data["steps"]:
        where = "/".join(x for x in (step.get("tier"), step.get("model")) if x)
        line = f"  {step['n']}. {step['skill']:<10} {step['status']:<9} {where}"
        if step.get("private"):
            line += f"  [kept on device: {step['private']}]"
        if step.get("error"):
            line += f"  {step['error']}"
        print(line.rstrip())
    if data["status"] != "ok":
        print(f"\npartial result: {data['error']}")


_BY_SKILL: dict[str, Callable[[dict[str, Any]], None]] = {
    "search": search_results,
    "index": index_report,
    "image": image_labels,
}
