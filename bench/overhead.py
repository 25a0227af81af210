"""Raw llama-cpp-python vs. the aios orchestrator: same model, prompt and token count, one run.

Measures, alternating raw / aios each round (odd rounds raw first, even rounds aios first;
one warm-up call per side first, so model load is excluded):

* decode throughput (tokens/s) of raw ``Llama.create_completion(stream=True)`` and of
  ``Orchestrator.invoke("generate", ...)`` on the ``gemma3-270m`` model of the embedded
  reference config, and their ratio aios/raw (target >= 0.98);
* the per-request aios overhead reported by each record (``overhead_ms``: validation, model
  choice and dispatch; no inference, no load), p50/p90/max (target p50 < 1 ms);
* the pure dispatch path without inference (input validation + model choice, many times):
  ``dispatch_us_p50``.

Run from the repository root with the aios venv active::

    python bench/overhead.py [--json] [--rounds 16] [--tokens 48]

``--json`` prints exactly one JSON object on stdout; everything else goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Any

from _common import err, percentile, raw_llama

import aios.log
import aios.sources
from aios.orchestrator import Orchestrator
from aios.record import ExecutionRecord
from aios.routing.policy import RequestOptions, decide

MODEL = "gemma3-270m"
# The start of a story: a base model keeps going, so both sides reach max_tokens.
PROMPT = "Once upon a time, in a small village at the edge of a great forest, there lived"
TARGET_RATIO = 0.98
TARGET_OVERHEAD_MS = 1.0
DISPATCH_ITERATIONS = 200


def run_raw(llm: Any, n_prompt: int, tokens: int) -> tuple[int, float]:
    """(tokens generated, seconds from the call to the last chunk)."""
    finish = None
    t0 = time.perf_counter()
    for chunk in llm.create_completion(
        PROMPT,
        max_tokens=tokens,
        temperature=0,
        repeat_penalty=1.1,
        top_p=0.95,
        top_k=40,
        stream=True,
    ):
        finish = chunk["choices"][0]["finish_reason"] or finish
    elapsed = time.perf_counter() - t0
    # The context holds prompt + generated tokens; on "length" the last sampled one is not
    # evaluated yet (on "stop" the end-of-generation token is never added).
    produced = llm.n_tokens - n_prompt + (1 if finish == "length" else 0)
    return produced, elapsed


def run_aios(orch: Orchestrator, tokens: int) -> tuple[int, float, float, float]:
    """(tokens_out, seconds by the record, overhead ms by the record, wall seconds of invoke)."""
    t0 = time.perf_counter()
    result = orch.invoke("generate", {"prompt": PROMPT, "max_tokens": tokens}, model=MODEL)
    wall = time.perf_counter() - t0
    rec = result.record
    return rec.tokens_out, (rec.latency_ms - rec.load_ms) / 1000, rec.overhead_ms, wall


def dispatch_us(orch: Orchestrator, iterations: int) -> list[float]:
    """Microseconds per validation + routing decision + model choice, no inference."""
    cls = orch.skill_class("generate")
    payload = {"prompt": PROMPT, "max_tokens": 128}
    opts = RequestOptions(model=MODEL)
    times: list[float] = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        record = ExecutionRecord(skill="generate")
        valid = orch._validate(cls, payload)
        route = decide(orch.config, cls, opts, orch.route_state(cls, valid, opts))
        choice = orch.choose_model(cls, record, route, MODEL)
        times.append((time.perf_counter() - t0) * 1e6)
        assert choice is not None and choice.model.id == MODEL
    return times


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Raw llama-cpp-python vs. the aios orchestrator.")
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    # Many short rounds: on a busy 2-core machine a few long rounds cannot resolve a 2% target.
    ap.add_argument("--rounds", type=int, default=16, help="alternating rounds (default 16)")
    ap.add_argument("--tokens", type=int, default=48, help="tokens per request (default 48)")
    args = ap.parse_args(argv)
    aios.log.configure("warning")

    orch = Orchestrator.from_file(None)
    llm, path = raw_llama(orch, MODEL)
    n_prompt = len(llm.tokenize(PROMPT.encode("utf-8")))
    err(
        f"model {MODEL}: {path} ({os.cpu_count()} threads), prompt {n_prompt} tokens, "
        f"{args.tokens} tokens x {args.rounds} rounds"
    )

    run_raw(llm, n_prompt, args.tokens)  # warm-up
    warm = orch.invoke("generate", {"prompt": PROMPT, "max_tokens": args.tokens}, model=MODEL)
    err(f"warm-up: aios loaded the model in {warm.record.load_ms:.0f} ms")

    raw_rates: list[float] = []
    aios_rates: list[float] = []
    wall_rates: list[float] = []
    overheads: list[float] = []
    mismatches: list[str] = []
    err(
        f"{'round':>5} {'raw tok':>7} {'raw tok/s':>9} {'aios tok':>8} {'aios tok/s':>10} "
        f"{'ratio':>6} {'overhead ms':>11}"
    )
    for i in range(1, args.rounds + 1):
        if i % 2:  # alternate which side goes first, so drift does not favour one side
            raw_n, raw_s = run_raw(llm, n_prompt, args.tokens)
            aios_n, aios_s, over_ms, wall_s = run_aios(orch, args.tokens)
        else:
            aios_n, aios_s, over_ms, wall_s = run_aios(orch, args.tokens)
            raw_n, raw_s = run_raw(llm, n_prompt, args.tokens)
        raw_rates.append(raw_n / raw_s)
        aios_rates.append(aios_n / aios_s)
        wall_rates.append(aios_n / wall_s)
        overheads.append(over_ms)
        if raw_n != args.tokens or aios_n != args.tokens:
            mismatches.append(f"round {i}: raw {raw_n}, aios {aios_n} tokens (asked {args.tokens})")
        err(
            f"{i:>5} {raw_n:>7} {raw_rates[-1]:>9.2f} {aios_n:>8} {aios_rates[-1]:>10.2f} "
            f"{aios_rates[-1] / raw_rates[-1]:>6.3f} {over_ms:>11.3f}"
        )

    dispatch = dispatch_us(orch, DISPATCH_ITERATIONS)
    raw_med = statistics.median(raw_rates)
    aios_med = statistics.median(aios_rates)
    ratio = aios_med / raw_med
    summary = {
        "raw_tok_s": round(raw_med, 3),
        "aios_tok_s": round(aios_med, 3),
        "ratio": round(ratio, 4),
        "overhead_ms_p50": round(percentile(overheads, 50), 4),
        "overhead_ms_p90": round(percentile(overheads, 90), 4),
        "dispatch_us_p50": round(percentile(dispatch, 50), 2),
        "tokens": args.tokens,
        "rounds": args.rounds,
        "model": MODEL,
    }

    def mark(ok: bool) -> str:
        return "ok" if ok else "MISSED"

    err("")
    for line in mismatches:
        err(f"token count differs, rates are per token: {line}")
    err(f"{'':<26}{'measured':>12}  {'target':<10}")
    err(f"{'raw tok/s (median)':<26}{raw_med:>12.2f}")
    err(f"{'aios tok/s (median)':<26}{aios_med:>12.2f}")
    err(f"{'ratio aios/raw':<26}{ratio:>12.4f}  {'>= 0.98':<10} {mark(ratio >= TARGET_RATIO)}")
    err(f"{'  (by invoke wall clock)':<26}{statistics.median(wall_rates) / raw_med:>12.4f}")
    p50 = summary["overhead_ms_p50"]
    err(f"{'overhead ms p50':<26}{p50:>12.3f}  {'< 1':<10} {mark(p50 < TARGET_OVERHEAD_MS)}")
    err(f"{'overhead ms p90':<26}{summary['overhead_ms_p90']:>12.3f}")
    err(f"{'overhead ms max':<26}{max(overheads):>12.3f}")
    err(
        f"{'dispatch us p50':<26}{summary['dispatch_us_p50']:>12.1f}  "
        f"(validate + choose, {DISPATCH_ITERATIONS} runs; p90 {percentile(dispatch, 90):.1f})"
    )
    if args.json:
        print(json.dumps(summary))
    orch.close()
    llm.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
