"""Held-out evaluation of the learned difficulty router against simple baselines.

For each of K random 50/50 splits of a labeled CSV (default: RouteLLM's GSM8K labels, with
the prompts RouteLLM flags as contaminated excluded), fits ``DifficultyRouter`` on one half and
evaluates it on the other, next to random routing (expected value over 200 shuffles) and a
prompt-length-only router (longer = harder). Reports device_share_at_95, device_share_at_100,
APGR and the p99 wall time to score one prompt from raw text, as mean [min, max] over splits,
plus the mean quality-cost curve.

Run from the repository root with the aios venv active::

    python bench/router_eval.py [--splits 5] [--embed] [--json]

A second real set, where difficulty is mostly the subject: ``bench/data/routellm_mmlu7.csv``
(RouteLLM's MMLU labels for seven subjects, the same two models; see ``bench/data/README.md``)::

    python bench/router_eval.py --csv bench/data/routellm_mmlu7.csv \
        --device-col mixtral-8x7b-instruct-v0.1 --cloud-col gpt-4-1106-preview

``--json`` prints exactly one JSON object on stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from aios.routing.difficulty import (
    DifficultyRouter,
    UseEncoder,
    evaluate,
    load_labeled_csv,
    random_baseline,
    read_excluded_prompts,
)

# shared/ sits beside the repository (CI clones it there too).
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "routellm"
DEVICE_COL = "mistralai/Mixtral-8x7B-Instruct-v0.1"
CLOUD_COL = "gpt-4-1106-preview"
METRICS = ("device_share_at_95", "device_share_at_100", "apgr", "decision_ms_p99")


def _p99_ms(fn: Any, prompts: list[str]) -> float:
    for p in prompts[:5]:  # warm caches and lazy sessions outside the timed loop
        fn(p)
    times = []
    for p in prompts:
        t0 = time.perf_counter()
        fn(p)
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.percentile(times, 99))


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.exclude is None and args.csv == DATA / "gsm8k_responses.csv":
        args.exclude = DATA / "gsm8k_contaminated_prompts.jsonl"
    exclude = read_excluded_prompts(args.exclude) if args.exclude else set()
    data = load_labeled_csv(
        args.csv, device_col=args.device_col, cloud_col=args.cloud_col, exclude=exclude
    )
    embedder = UseEncoder() if args.embed else None
    n = len(data)
    rows: dict[str, list[dict[str, Any]]] = {"learned": [], "random": [], "length": []}
    for split in range(args.splits):
        perm = np.random.default_rng(args.seed + split).permutation(n)
        train, test = data.subset(perm[: n // 2]), data.subset(perm[n // 2 :])
        router = DifficultyRouter.fit(
            train.prompts,
            train.device_correct,
            train.cloud_correct,
            seed=args.seed + split,
            embedder=embedder,
        )
        learned = evaluate(router.score_many(test.prompts), test.device_correct, test.cloud_correct)
        learned["decision_ms_p99"] = _p99_ms(router.score, test.prompts)
        learned["alpha"] = router.metadata["alpha"]
        rows["learned"].append(learned)

        rnd = random_baseline(test.device_correct, test.cloud_correct, seed=args.seed + split)
        rnd["decision_ms_p99"] = 0.0
        rows["random"].append(rnd)

        length = evaluate(
            np.array([len(p) for p in test.prompts], dtype=float),
            test.device_correct,
            test.cloud_correct,
        )
        length["decision_ms_p99"] = _p99_ms(len, test.prompts)
        rows["length"].append(length)
        print(
            f"split {split}: learned ds95={learned['device_share_at_95']:.3f} "
            f"random={rnd['device_share_at_95']:.3f} length={length['device_share_at_95']:.3f} "
            f"threshold@95={learned['threshold_at_95'] or 1:.3f} "
            f"penalty/row={router.metadata['alpha'] / len(train):g} "
            f"word-bag cv corr={router.metadata['word_bag']['cv_corr'] or 0:.3f}",
            file=sys.stderr,
        )

    summary: dict[str, Any] = {
        "csv": str(args.csv),
        "n_prompts": n,
        "n_excluded": len(exclude),
        "splits": args.splits,
        "embeddings": bool(args.embed),
        "routers": {},
    }
    for name, results in rows.items():
        stats = {}
        for m in METRICS:
            vals = np.array([r[m] for r in results], dtype=float)
            stats[m] = {
                "mean": float(vals.mean()),
                "std": float(vals.std()),
                "min": float(vals.min()),
                "max": float(vals.max()),
                "per_split": [round(float(v), 4) for v in vals],
            }
        curve = np.mean([[p["accuracy"] for p in r["curve"]] for r in results], axis=0)
        stats["curve"] = [
            {"device_share": p["device_share"], "accuracy": float(a)}
            for p, a in zip(results[0]["curve"], curve, strict=True)
        ]
        summary["routers"][name] = stats
    return summary


def _print_table(summary: dict[str, Any]) -> None:
    routers = summary["routers"]
    print(
        f"{summary['n_prompts']} prompts ({summary['n_excluded']} excluded), "
        f"{summary['splits']} random 50/50 splits; mean [min, max] on the held-out half"
        + (" (with embeddings)" if summary["embeddings"] else "")
    )
    print(f"{'metric':22s}" + "".join(f"{name:>22s}" for name in routers))
    for m in METRICS:
        cells = []
        for stats in routers.values():
            s = stats[m]
            cells.append(f"{s['mean']:.3f} [{s['min']:.2f},{s['max']:.2f}]")
        print(f"{m:22s}" + "".join(f"{c:>22s}" for c in cells))
    print("\nquality-cost curve (mean accuracy at each device share)")
    print(f"{'device_share':>12s}" + "".join(f"{name:>10s}" for name in routers))
    curves = [stats["curve"] for stats in routers.values()]
    for i, point in enumerate(curves[0]):
        print(
            f"{point['device_share']:12.2f}" + "".join(f"{c[i]['accuracy']:10.3f}" for c in curves)
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--csv", type=Path, default=DATA / "gsm8k_responses.csv")
    ap.add_argument(
        "--exclude",
        type=Path,
        default=None,
        help="prompts to leave out (default: RouteLLM's contaminated list, for the GSM8K file)",
    )
    ap.add_argument("--device-col", default=DEVICE_COL)
    ap.add_argument("--cloud-col", default=CLOUD_COL)
    ap.add_argument("--splits", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--embed", action="store_true", help="add USE sentence embeddings")
    ap.add_argument("--json", action="store_true", help="print one JSON summary on stdout")
    args = ap.parse_args(argv)
    summary = run(args)
    if args.json:
        print(json.dumps(summary))
    else:
        _print_table(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
