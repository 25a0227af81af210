"""The same ONNX model on onnxruntime's CPU EP and on QNN (the HTP simulator), side by side.

QNN HTP is a SIMULATOR on x86_64: latency here says nothing about a phone. What this measures
that does carry over is the shape of the costs: how long compiling a QNN graph takes against
loading its cached context, and whether every node runs on QNN.

Measured, through the aios backends (``OnnxRuntimeBackend``, ``QnnBackend``):

* load times: CPU EP session; QNN first load in this process without the context cache
  (compile plus the QNN backend's one-time set-up); QNN first load into an empty context cache
  (compile plus writing the EP context model); QNN load from the cached context. Each QNN load
  kind is the median of ``--load-rounds`` (a fresh cache folder per round);
* per-call latency p50/p99 over ``--runs`` calls after ``--warmup`` calls, CPU vs QNN (from the
  cached context, power_mode unset), and the QNN p50 under each power_mode;
* which nodes QNN took (``QnnModel.node_assignment`` of the compiled session).

Run from the repository root with the aios venv::

    python bench/npu_latency.py [--json] [--model PATH] [--runs 200] [--size 64 --filters 32]

Without ``--model`` it generates the tiny CNN of the tests (``aios.backends.sample_models``).
``--json`` prints exactly one JSON object on stdout; everything else goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from _common import err, percentile

import aios.log
from aios.backends.default_onnxruntime import OnnxRuntimeBackend
from aios.backends.default_qnn import EP_NAME, POWER_MODES, QnnBackend
from aios.config.schema import ModelSpec, QnnSettings
from aios.testing.tiny_onnx import onnx_spec

WARNING = "QNN HTP is a SIMULATOR on x86_64: latency here says nothing about a phone."
DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send fd 1 to stderr: the QNN libraries print banners straight to stdout."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).fflush(None)  # C stdio buffers of the native libraries too
        os.dup2(saved, 1)
        os.close(saved)


def make_inputs(model: Any, seed: int = 1) -> dict[str, Any]:
    """Random inputs of the static shapes QNN runs the model at."""
    rng = np.random.default_rng(seed)
    inputs = {}
    for inp in model.session.get_inputs():
        dtype = DTYPES.get(inp.type)
        if dtype is None:
            raise SystemExit(f"input '{inp.name}' has type {inp.type}; this bench feeds tensors")
        shape = model.input_shapes[inp.name]
        if np.issubdtype(dtype, np.floating):
            inputs[inp.name] = rng.standard_normal(shape).astype(dtype)
        else:
            inputs[inp.name] = rng.integers(0, 2, size=shape).astype(dtype)
    return inputs


def latencies(model: Any, inputs: dict[str, Any], runs: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        model.run(inputs)
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        model.run(inputs)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def qnn_backend(settings: QnnSettings, **changes: Any) -> QnnBackend:
    backend = QnnBackend()
    backend.settings = settings.model_copy(update=changes)
    return backend


def timed_load(backend: Any, spec: ModelSpec, path: Path) -> tuple[Any, float]:
    t0 = time.perf_counter()
    model = backend.load(spec, path)
    return model, (time.perf_counter() - t0) * 1000


def measure(args: argparse.Namespace, path: Path, work: Path) -> dict[str, Any]:
    spec = onnx_spec("bench-model", path, ["qnn", "onnxruntime"])
    settings = QnnSettings(soc_model=args.soc_model, fp16=args.fp16, cache_dir=str(work / "unused"))
    avail = QnnBackend().probe()
    if not avail.available:
        raise SystemExit(f"qnn backend unavailable: {avail.reason}")

    cpu_model, cpu_load_ms = timed_load(OnnxRuntimeBackend(), spec, path)
    cold, cold_ms = timed_load(qnn_backend(settings, context_cache=False), spec, path)
    nodes = {ep: len(ops) for ep, ops in cold.node_assignment.items()}
    cpu_ops = sorted(set(cold.node_assignment.get("CPUExecutionProvider", [])))
    compile_ms, cached_ms = [], []
    cached = None
    for i in range(args.load_rounds):
        folder = str(work / f"ctx-{i}")
        first, ms = timed_load(qnn_backend(settings, cache_dir=folder), spec, path)
        assert first.context == "compiled", first.context
        compile_ms.append(ms)
        cached, ms = timed_load(qnn_backend(settings, cache_dir=folder), spec, path)
        assert cached.context == "cached", cached.context
        cached_ms.append(ms)
    assert cached is not None

    inputs = make_inputs(cached)
    # The CPU EP gets the same static-shaped inputs (its session keeps dynamic dims dynamic).
    cpu_lat = latencies(cpu_model, inputs, args.runs, args.warmup)
    qnn_lat = latencies(cached, inputs, args.runs, args.warmup)
    modes = {}
    for mode in POWER_MODES:
        cached.power_mode = mode
        modes[mode] = statistics.median(latencies(cached, inputs, args.runs, args.warmup))
    first_out = next(iter(cached.run(inputs).values()))
    cpu_out = next(iter(cpu_model.run(inputs).values()))
    max_diff = float(np.max(np.abs(np.asarray(first_out, np.float64) - cpu_out)))

    cpu = {
        "load_ms": cpu_load_ms,
        "p50_ms": percentile(cpu_lat, 50),
        "p99_ms": percentile(cpu_lat, 99),
    }
    qnn = {
        "load_cold_no_cache_ms": cold_ms,
        "load_compile_ms": statistics.median(compile_ms),
        "load_cached_context_ms": statistics.median(cached_ms),
        "p50_ms": percentile(qnn_lat, 50),
        "p99_ms": percentile(qnn_lat, 99),
        "p50_ms_by_power_mode": modes,
        "nodes": nodes,
        "cpu_fallback_ops": cpu_ops,
        "max_abs_diff_vs_cpu": max_diff,
        "settings": {"soc_model": args.soc_model, "fp16": args.fp16},
        "backend": avail.reason,
    }
    return {
        "warning": WARNING,
        "simulated": bool(avail.details.get("simulated")),
        "model": str(path) if args.model else f"generated tiny_cnn {args.size}px/{args.filters}",
        "inputs": {k: list(v.shape) for k, v in inputs.items()},
        "runs": args.runs,
        "cpu": cpu,
        "qnn": qnn,
        "ratios": {
            "qnn_vs_cpu_p50": qnn["p50_ms"] / cpu["p50_ms"],
            "qnn_vs_cpu_p99": qnn["p99_ms"] / cpu["p99_ms"],
            "qnn_compile_vs_cached_load": qnn["load_compile_ms"] / qnn["load_cached_context_ms"],
            "qnn_cached_load_vs_cpu_load": qnn["load_cached_context_ms"] / cpu["load_ms"],
        },
    }


def table(r: dict[str, Any]) -> str:
    cpu, qnn, ratio = r["cpu"], r["qnn"], r["ratios"]
    nodes = ", ".join(
        f"{ep.removesuffix('ExecutionProvider')} {n}" for ep, n in qnn["nodes"].items()
    )
    modes = ", ".join(f"{m} {ms:.2f} ms" for m, ms in qnn["p50_ms_by_power_mode"].items())
    rows = [
        f"*** {WARNING} ***" if r["simulated"] else "QNN on device",
        f"model: {r['model']}  inputs: {r['inputs']}  runs: {r['runs']}",
        f"qnn: {qnn['backend']}",
        f"nodes placed: {nodes}"
        + (f" (CPU ops: {', '.join(qnn['cpu_fallback_ops'])})" if qnn["cpu_fallback_ops"] else ""),
        f"max |QNN - CPU| on the output: {qnn['max_abs_diff_vs_cpu']:.2e}",
        "",
        f"{'':34}{'CPU EP':>12}{'QNN (HTP sim)':>16}{'QNN/CPU':>10}",
        f"{'load, first in process (no cache)':34}{cpu['load_ms']:>9.1f} ms"
        f"{qnn['load_cold_no_cache_ms']:>13.1f} ms"
        f"{qnn['load_cold_no_cache_ms'] / cpu['load_ms']:>9.1f}x",
        f"{'load, compile + write context':34}{'':>12}{qnn['load_compile_ms']:>13.1f} ms",
        f"{'load, cached context':34}{'':>12}{qnn['load_cached_context_ms']:>13.1f} ms"
        f"{ratio['qnn_cached_load_vs_cpu_load']:>9.1f}x",
        f"{'latency p50':34}{cpu['p50_ms']:>9.3f} ms{qnn['p50_ms']:>13.3f} ms"
        f"{ratio['qnn_vs_cpu_p50']:>9.1f}x",
        f"{'latency p99':34}{cpu['p99_ms']:>9.3f} ms{qnn['p99_ms']:>13.3f} ms"
        f"{ratio['qnn_vs_cpu_p99']:>9.1f}x",
        "",
        f"context cache: compile / cached load = {ratio['qnn_compile_vs_cached_load']:.1f}x",
        f"QNN p50 by power_mode: {modes}",
    ]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="CPU EP vs QNN (HTP simulator) on one ONNX model.")
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    ap.add_argument("--model", type=Path, help="any ONNX file (default: a generated tiny CNN)")
    ap.add_argument("--runs", type=int, default=200, help="timed calls per side (default 200)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed calls first (default 5)")
    ap.add_argument("--load-rounds", type=int, default=3, help="QNN loads per kind (median)")
    ap.add_argument("--size", type=int, default=16, help="generated model: image side")
    ap.add_argument("--filters", type=int, default=8, help="generated model: conv filters")
    ap.add_argument("--soc-model", type=int, help="QNN SoC id, e.g. 57 (SM8650)")
    ap.add_argument("--fp16", action="store_true", help="fp16 precision (needs --soc-model)")
    args = ap.parse_args(argv)
    aios.log.configure("warning")
    work = Path(tempfile.mkdtemp(prefix="aios-npu-bench-"))
    try:
        with stdout_to_stderr():
            path = args.model
            if path is None:
                from aios.testing.tiny_onnx import tiny_cnn

                path = tiny_cnn(work / "tiny_cnn.onnx", size=args.size, filters=args.filters)
            result = measure(args, path.resolve(), work)
            err(table(result))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(result))
    return 0 if EP_NAME in result["qnn"]["nodes"] else 1


if __name__ == "__main__":
    sys.exit(main())
