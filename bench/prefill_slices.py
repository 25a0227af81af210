"""Sliced prompt prefill vs llama.cpp's one-piece prefill: what cancellability costs.

For a long prompt on ``gemma3-270m`` (the embedded reference config's summarizer), each round
reads the prompt from an empty KV cache twice, alternating which goes first:

* one piece: ``create_completion(prompt, max_tokens=1)`` as llama-cpp-python does it;
* sliced: ``aios.backends.llama_cpp_prefill.prefill`` in slices of N tokens, then the same call
  (which finds the prefix cached and decodes only the last token).

It prints seconds per side, their ratio (sliced / one piece; target <= 1.05 for the shipped
slice size) and, for cancels fired at random points of a sliced prefill, how long after the
cancel the prefill returned (the bound a client waits for its slot to free).

    python bench/prefill_slices.py [--json] [--rounds 4] [--slices 64,128,256]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import threading
import time
from typing import Any

from _common import err, percentile, raw_llama

import aios.log
import aios.sources
from aios.backends import llama_cpp_prefill
from aios.orchestrator import Orchestrator

MODEL = "gemma3-270m"
PROMPT = " ".join(
    f"On day {i} the council reviewed the budget for parks, roads and schools." for i in range(70)
)
TARGET_RATIO = 1.05


def one_piece(llm: Any) -> float:
    llm.reset()
    t0 = time.perf_counter()
    llm.create_completion(PROMPT, max_tokens=1, temperature=0)
    return time.perf_counter() - t0


def sliced(llm: Any, tokens: list[int], cancel: threading.Event) -> float:
    llm.reset()
    t0 = time.perf_counter()
    if llama_cpp_prefill.prefill(llm, tokens, cancel):
        llm.create_completion(PROMPT, max_tokens=1, temperature=0)
    return time.perf_counter() - t0


def cancel_delays(llm: Any, tokens: list[int], full_s: float, n: int) -> list[float]:
    """Seconds from a cancel (at a random point of the prefill) to prefill returning."""
    rng = random.Random(0)
    delays = []
    for _ in range(n):
        cancel = threading.Event()
        fired: list[float] = []
        at = rng.uniform(0.05, 0.9) * full_s
        timer = threading.Timer(
            at, lambda c=cancel, f=fired: (f.append(time.perf_counter()), c.set())
        )
        llm.reset()
        timer.start()
        llama_cpp_prefill.prefill(llm, tokens, cancel)
        end = time.perf_counter()
        timer.join()
        delays.append(max(0.0, end - fired[0]) if fired else 0.0)
    return delays


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Sliced vs one-piece prompt prefill.")
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--slices", default=f"64,{llama_cpp_prefill.PREFILL_SLICE},256")
    ap.add_argument("--cancels", type=int, default=8, help="cancels timed per slice size")
    args = ap.parse_args(argv)
    aios.log.configure("warning")

    orch = Orchestrator.from_file(None)
    llm, path = raw_llama(orch, MODEL)
    tokens = llama_cpp_prefill.completion_tokens(llm, PROMPT)
    shipped = llama_cpp_prefill.PREFILL_SLICE
    err(f"model {MODEL}, prompt {len(tokens)} tokens, {os.cpu_count()} threads")
    one_piece(llm)  # warm-up

    results: dict[str, Any] = {"model": MODEL, "prompt_tokens": len(tokens), "slices": {}}
    err(
        f"{'slice':>5} {'one piece s':>11} {'sliced s':>8} {'ratio':>6} {'cancel p50 s':>12} "
        f"{'cancel max s':>12}"
    )
    for size in (int(s) for s in args.slices.split(",")):
        llama_cpp_prefill.PREFILL_SLICE = size
        whole, parts = [], []
        for i in range(args.rounds):
            if i % 2:
                whole.append(one_piece(llm))
                parts.append(sliced(llm, tokens, threading.Event()))
            else:
                parts.append(sliced(llm, tokens, threading.Event()))
                whole.append(one_piece(llm))
        w, p = statistics.median(whole), statistics.median(parts)
        delays = cancel_delays(llm, tokens, p, args.cancels)
        row = {
            "one_piece_s": w,
            "sliced_s": p,
            "ratio": p / w,
            "cancel_p50_s": percentile(delays, 50),
            "cancel_max_s": max(delays),
        }
        results["slices"][str(size)] = row
        err(
            f"{size:>5} {w:>11.2f} {p:>8.2f} {p / w:>6.3f} {row['cancel_p50_s']:>12.2f} "
            f"{row['cancel_max_s']:>12.2f}"
        )
    ours = results["slices"].get(str(shipped))
    if ours is not None:
        results["shipped_slice"] = shipped
        results["meets_target"] = ours["ratio"] <= TARGET_RATIO
        err(f"shipped slice {shipped}: ratio {ours['ratio']:.3f} (target <= {TARGET_RATIO})")
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
