"""Image tagging: EfficientNet-Lite0 FP32 vs INT8 on onnxruntime's CPU EP, side by side.

Measured through the aios backend (``OnnxRuntimeBackend``) on the real built models:

* per-image latency p50/p99 at batch 1 (``--runs`` calls after ``--warmup``) and throughput at
  batch 16 (``--batch-rounds`` calls), preprocessing excluded; file sizes; INT8/FP32 ratios;
* agreement of INT8 with FP32 (top-1 agreement, top-5 overlap) over every colour photo in
  ``skimage.data`` and deterministic views of each (centre crop, whole frame, mirror, 90-degree
  turn, corner crops, a tight mirrored crop). This is AGREEMENT, NOT IMAGENET ACCURACY: the
  ImageNet validation set is not available offline. Three of the views per photo were also the
  INT8 calibration data; the held-out views are reported separately;
* sanity labels (top-3, English and Chinese) of each photo, FP32 and INT8;
* with ``--qnn``: one row per model on the QNN backend's HTP simulator (batch 1), labelled
  simulation: its latency says nothing about a phone.

Run from the repository root with the aios venv (the models are built into ``--model-dir``
first when missing, which needs ``pip install 'aios[build]'``)::

    python bench/image_tagging.py [--json] [--model-dir DIR] [--runs 100] [--qnn]

``--json`` prints exactly one JSON object on stdout; everything else goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import err, percentile
from PIL import Image

import aios.log
from aios.backends.default_onnxruntime import OnnxRuntimeBackend
from aios.builders import run_builder
from aios.plugins.vision_build import BUILDERS, FP32_FILE, INT8_FILE, sample_photos
from aios.testing.tiny_onnx import onnx_spec
from aios.vision import INPUT_NAME, OUTPUT_NAME, labels, preprocess

NOTE = (
    "INT8 vs FP32 is AGREEMENT on skimage sample photos and views of them, "
    "NOT ImageNet accuracy (ImageNet val is not available offline)"
)
CALIBRATION_VIEWS = {"centre", "whole", "mirror-tight"}
SANITY = ("chelsea", "coffee", "rocket", "astronaut", "motorcycle_left", "hubble_deep_field")
MODELS = {"fp32": FP32_FILE, "int8": INT8_FILE}


def corner(img: Image.Image, right: bool) -> Image.Image:
    w, h = img.size
    cw, ch = int(w * 0.7), int(h * 0.7)
    box = (w - cw, h - ch, w, h) if right else (0, 0, cw, ch)
    return img.crop(box)


def views(img: Image.Image) -> dict[str, np.ndarray]:
    mirror = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return {
        "centre": preprocess.to_array(img),
        "whole": preprocess.to_array(img, crop=1.0),
        "mirror-tight": preprocess.to_array(mirror, crop=0.6),
        "mirror": preprocess.to_array(mirror),
        "turned": preprocess.to_array(img.rotate(90, expand=True)),
        "top-left": preprocess.to_array(corner(img, right=False)),
        "bottom-right": preprocess.to_array(corner(img, right=True)),
    }


def ensure_built(where: Path) -> dict[str, float]:
    took = {}
    for cls in BUILDERS:
        res = run_builder(cls, where)
        if res.built:
            took[cls.name] = round(res.seconds, 2)
    return took


def load(backend: Any, path: Path, name: str) -> tuple[Any, float]:
    spec = onnx_spec(name, path, [backend.name])
    t0 = time.perf_counter()
    model = backend.load(spec, path)
    return model, (time.perf_counter() - t0) * 1000


def timings(model: Any, x1: np.ndarray, x16: np.ndarray, args: argparse.Namespace) -> dict:
    for _ in range(args.warmup):
        model.run({INPUT_NAME: x1})
    lat = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        model.run({INPUT_NAME: x1})
        lat.append((time.perf_counter() - t0) * 1000)
    model.run({INPUT_NAME: x16})
    t0 = time.perf_counter()
    for _ in range(args.batch_rounds):
        model.run({INPUT_NAME: x16})
    per_batch = (time.perf_counter() - t0) / args.batch_rounds
    return {
        "p50_ms": percentile(lat, 50),
        "p99_ms": percentile(lat, 99),
        "batch16_images_per_s": len(x16) / per_batch,
    }


def top3(logits: np.ndarray) -> list[str]:
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    out = []
    for i in np.argsort(-probs)[:3]:
        en, zh = labels.label(int(i))
        out.append(f"{en} {zh} {probs[i]:.2f}")
    return out


def measure(args: argparse.Namespace, where: Path) -> dict[str, Any]:
    built = ensure_built(where)
    photos = sample_photos()
    names, kinds, arrays = [], [], []
    for name, img in photos.items():
        for kind, arr in views(img).items():
            names.append(name)
            kinds.append(kind)
            arrays.append(arr)
    x_all = np.stack(arrays)
    x1 = preprocess.batch([photos["chelsea"]])
    x16 = np.stack([arrays[i % len(arrays)] for i in range(16)])

    cpu = OnnxRuntimeBackend()
    rows: dict[str, Any] = {}
    logits: dict[str, np.ndarray] = {}
    for key, file in MODELS.items():
        path = where / file
        model, load_ms = load(cpu, path, f"efficientnet-lite0-{key}")
        rows[key] = {
            "file": str(path),
            "size_mb": path.stat().st_size / 2**20,
            "load_ms": load_ms,
            **timings(model, x1, x16, args),
        }
        logits[key] = np.concatenate(
            [
                model.run({INPUT_NAME: x_all[i : i + 16]})[OUTPUT_NAME]
                for i in range(0, len(x_all), 16)
            ]
        )
        model.close()

    a, b = logits["fp32"], logits["int8"]
    top1 = a.argmax(1) == b.argmax(1)
    overlap = np.array(
        [
            len(set(np.argsort(-p)[:5]) & set(np.argsort(-q)[:5])) / 5
            for p, q in zip(a, b, strict=True)
        ]
    )
    held = np.array([k not in CALIBRATION_VIEWS for k in kinds])
    disagreements = [
        f"{names[i]}/{kinds[i]}: fp32 {labels.label(int(a[i].argmax()))[0]}, "
        f"int8 {labels.label(int(b[i].argmax()))[0]}"
        for i in np.flatnonzero(~top1)
    ]
    sanity = {}
    for name in SANITY:
        i = names.index(name)  # its centre view: what the `image` skill sees
        sanity[name] = {"fp32": top3(a[i]), "int8": top3(b[i])}

    result: dict[str, Any] = {
        "note": NOTE,
        "cpu_cores": os.cpu_count(),
        "model_dir": str(where),
        "build_s": built,
        "cpu": rows,
        "ratios_int8_vs_fp32": {
            "size": rows["int8"]["size_mb"] / rows["fp32"]["size_mb"],
            "p50": rows["int8"]["p50_ms"] / rows["fp32"]["p50_ms"],
            "p99": rows["int8"]["p99_ms"] / rows["fp32"]["p99_ms"],
            "batch16_throughput": rows["int8"]["batch16_images_per_s"]
            / rows["fp32"]["batch16_images_per_s"],
        },
        "agreement": {
            "photos": len(photos),
            "views": len(names),
            "top1_all": float(top1.mean()),
            "top5_overlap_all": float(overlap.mean()),
            "held_out_views": int(held.sum()),
            "top1_held_out": float(top1[held].mean()),
            "top5_overlap_held_out": float(overlap[held].mean()),
            "disagreements": disagreements,
        },
        "sanity": sanity,
    }
    if args.qnn:
        result["qnn_simulation"] = qnn_rows(where, x1, a[names.index("chelsea")])
    return result


def qnn_rows(where: Path, x1: np.ndarray, cpu_logits: np.ndarray) -> dict[str, Any]:
    from npu_latency import stdout_to_stderr

    from aios.backends.default_qnn import EP_NAME, QnnBackend
    from aios.config.schema import QnnSettings

    avail = QnnBackend().probe()
    if not avail.available:
        return {"unavailable": avail.reason}
    out: dict[str, Any] = {"backend": avail.reason}
    with tempfile.TemporaryDirectory() as tmp, stdout_to_stderr():
        for key, file in MODELS.items():
            backend = QnnBackend()
            backend.settings = QnnSettings(cache_dir=tmp, context_cache=False)
            model, load_ms = load(backend, where / file, f"efficientnet-lite0-{key}")
            lat = []
            for _ in range(3):
                t0 = time.perf_counter()
                got = model.run({INPUT_NAME: x1})[OUTPUT_NAME][0]
                lat.append((time.perf_counter() - t0) * 1000)
            out[key] = {
                "load_ms": load_ms,
                "p50_ms": percentile(lat, 50),
                "runs": len(lat),
                "nodes": {ep: len(ops) for ep, ops in model.node_assignment.items()},
                "all_nodes_on_qnn": list(model.node_assignment) == [EP_NAME],
                "top1_same_as_cpu_fp32": int(got.argmax()) == int(cpu_logits.argmax()),
            }
            model.close()
    return out


def table(r: dict[str, Any]) -> str:
    cpu, ratio, agree = r["cpu"], r["ratios_int8_vs_fp32"], r["agreement"]
    f, i = cpu["fp32"], cpu["int8"]
    lines = [
        f"EfficientNet-Lite0 on onnxruntime CPU EP ({r['cpu_cores']} cores), model dir "
        f"{r['model_dir']}" + (f"; built now: {r['build_s']} s" if r["build_s"] else ""),
        "",
        f"{'':30}{'FP32':>12}{'INT8':>12}{'INT8/FP32':>11}",
        f"{'file size':30}{f['size_mb']:>9.2f} MB{i['size_mb']:>9.2f} MB{ratio['size']:>10.2f}x",
        f"{'load':30}{f['load_ms']:>9.1f} ms{i['load_ms']:>9.1f} ms",
        f"{'latency p50 (batch 1)':30}{f['p50_ms']:>9.2f} ms{i['p50_ms']:>9.2f} ms"
        f"{ratio['p50']:>10.2f}x",
        f"{'latency p99 (batch 1)':30}{f['p99_ms']:>9.2f} ms{i['p99_ms']:>9.2f} ms"
        f"{ratio['p99']:>10.2f}x",
        f"{'throughput (batch 16)':30}{f['batch16_images_per_s']:>8.0f} im/s"
        f"{i['batch16_images_per_s']:>8.0f} im/s{ratio['batch16_throughput']:>10.2f}x",
        "",
        f"*** {r['note']} ***",
        f"INT8 vs FP32 over {agree['photos']} photos x views = {agree['views']} images: "
        f"top-1 agreement {agree['top1_all']:.1%}, top-5 overlap {agree['top5_overlap_all']:.1%}",
        f"  held-out views only ({agree['held_out_views']}, not used for calibration): "
        f"top-1 {agree['top1_held_out']:.1%}, top-5 overlap {agree['top5_overlap_held_out']:.1%}",
    ]
    lines += [f"  differs: {d}" for d in agree["disagreements"]]
    lines += ["", "sanity labels (centre crop, top-3):"]
    for name, s in r["sanity"].items():
        lines.append(f"  {name:<18} fp32: {' | '.join(s['fp32'])}")
        lines.append(f"  {'':<18} int8: {' | '.join(s['int8'])}")
    q = r.get("qnn_simulation")
    if q:
        lines += ["", "QNN HTP *** SIMULATION on x86_64: latency says nothing about a phone ***"]
        if "unavailable" in q:
            lines.append(f"  unavailable: {q['unavailable']}")
        for key in MODELS:
            if key in q:
                row = q[key]
                lines.append(
                    f"  {key}: load {row['load_ms']:.0f} ms, p50 {row['p50_ms']:.0f} ms over "
                    f"{row['runs']} runs (simulation), nodes {row['nodes']}, "
                    f"top-1 same as CPU FP32: {row['top1_same_as_cpu_fp32']}"
                )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="EfficientNet-Lite0 FP32 vs INT8 on the CPU EP.")
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    ap.add_argument("--model-dir", type=Path, help="where the built models are (or get built)")
    ap.add_argument("--runs", type=int, default=100, help="timed batch-1 calls (default 100)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed calls first (default 5)")
    ap.add_argument("--batch-rounds", type=int, default=10, help="timed batch-16 calls")
    ap.add_argument("--qnn", action="store_true", help="add QNN HTP simulator rows (slow)")
    args = ap.parse_args(argv)
    aios.log.configure("warning")
    where = args.model_dir or Path(tempfile.gettempdir()) / "aios-bench-vision-models"
    result = measure(args, where.expanduser().resolve())
    err(table(result))
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
