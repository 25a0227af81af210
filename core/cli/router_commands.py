"""`aios router fit|eval`: the learned difficulty router from labeled prompts."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Any

from aios.errors import AIOSError
from aios.files import why_unreadable


def _read(path: str, reader: Any) -> Any:
    """``reader(path)`` with every input problem turned into an error that names the file."""
    try:
        return reader(path)
    except ValueError as exc:
        raise AIOSError(f"{path}: {exc}") from None


def _number(value: float) -> float | None:
    """NaN (APGR when the tiers tie) as None, so --json stays valid JSON."""
    return None if math.isnan(value) else value


def _write(path: str, writer: Any) -> None:
    try:
        writer(path)
    except IsADirectoryError:
        raise AIOSError(f"{path}: is a directory; --out names the file to write") from None
    except OSError as exc:
        raise AIOSError(f"{path}: cannot write ({exc.strerror or exc})") from None


def _load(args: argparse.Namespace) -> Any:
    from aios.routing import difficulty as d

    exclude = _read(args.exclude, d.read_excluded_prompts) if args.exclude else None
    return _read(
        args.data,
        lambda path: d.load_labeled_csv(
            path,
            prompt_col=args.prompt_col,
            device_col=args.device_col,
            cloud_col=args.cloud_col,
            exclude=exclude,
        ),
    )


def dispatch(args: argparse.Namespace) -> int:
    from aios.routing import difficulty as d

    data = _load(args)
    if args.router_command == "fit":
        embedder = d.UseEncoder() if args.embeddings else None
        t0 = time.perf_counter()
        try:
            router = d.DifficultyRouter.fit(
                data.prompts,
                data.device_correct,
                data.cloud_correct,
                seed=args.seed,
                embedder=embedder,
            )
        except ValueError as exc:
            raise AIOSError(f"cannot fit a router on {args.data}: {exc}") from None
        _write(args.out, router.save)
        meta = router.metadata
        summary = {
            "router": args.out,
            "rows": len(data),
            "fit_s": round(time.perf_counter() - t0, 2),
            # What cross-validation on the training rows saw: how much the words alone
            # predict the cloud's gain, and the penalty it chose (per training row).
            "word_bag_cv_corr": meta["word_bag"]["cv_corr"],
            "penalty_per_row": meta["alpha"] / len(data),
        }
        if args.json:
            print(json.dumps(summary))
        else:
            print(f"fitted on {len(data)} prompts in {summary['fit_s']} s -> {args.out}")
            if summary["word_bag_cv_corr"] is not None:
                print(
                    f"cross-validated: penalty {summary['penalty_per_row']:g} per row, "
                    f"word-bag held-out correlation {summary['word_bag_cv_corr']:.3f}"
                )
            print(
                "scores are percentiles of these prompts: routing.difficulty_threshold t keeps "
                "about t of such traffic on device (`aios router eval` gives each point's t)"
            )
        return 0
    try:
        router = d.DifficultyRouter.load(args.router)
    except OSError as exc:
        raise AIOSError(f"{args.router}: {why_unreadable(exc)}") from None
    except ValueError as exc:
        raise AIOSError(f"{args.router}: {exc}") from None
    # Loading the encoder session is a one-time start-up cost, not part of any decision.
    try:
        router.score(data.prompts[0])
    except RuntimeError as exc:
        raise AIOSError(f"{args.router}: cannot score with it: {exc}") from None
    times = []
    scores = []
    for prompt in data.prompts:
        t0 = time.perf_counter()
        scores.append(router.score(prompt))
        times.append((time.perf_counter() - t0) * 1000)
    import numpy as np

    result = d.evaluate(np.asarray(scores), data.device_correct, data.cloud_correct)
    rand = d.random_baseline(data.device_correct, data.cloud_correct)
    keys = ("device_share_at_95", "device_share_at_100", "apgr")
    summary = {
        "rows": len(data),
        **{k: _number(result[k]) for k in keys},
        "random": {k: _number(rand[k]) for k in keys},
        "decision_ms_p99": round(float(np.percentile(times, 99)), 3),
        # The routing.difficulty_threshold that reaches each operating point on these rows.
        "threshold_at_95": result["threshold_at_95"],
        "threshold_at_100": result["threshold_at_100"],
        "curve": result["curve"],
    }
    if args.json:
        print(json.dumps(summary, allow_nan=False))
        return 0
    print(f"{'device share':>12}  {'accuracy':>8}  {'threshold':>9}", file=sys.stdout)
    for point in result["curve"]:
        print(
            f"{point['device_share']:>12.2f}  {point['accuracy']:>8.3f}  "
            f"{_threshold_text(point['threshold']):>9}"
        )
    print()
    print(f"{'':24}{'router':>8}{'random':>8}")
    for key in keys:
        cells = (summary[key], summary["random"][key])
        print(f"{key:24}" + "".join(f"{'n/a' if c is None else f'{c:.3f}':>8}" for c in cells))
    if summary["apgr"] is None:
        print("apgr n/a: both tiers are equally accurate on these rows, so there is no gap")
    print(f"decision p99 {summary['decision_ms_p99']:.3f} ms over {len(data)} prompts")
    for level in (95, 100):
        share = summary[f"device_share_at_{level}"]
        print(
            f"routing.difficulty_threshold = {_threshold_text(summary[f'threshold_at_{level}'])} "
            f"keeps {share:.3f} of these prompts on device at >= {level} % of cloud accuracy"
        )
    return 0


def _threshold_text(threshold: float | None) -> str:
    # None: nothing goes to the cloud at that point, which any threshold of 1 reaches.
    return "1" if threshold is None else f"{threshold:.4f}"
