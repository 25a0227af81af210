"""Labeled routing data: prompts with per-prompt correctness of the device and cloud tiers.

Read from CSV as RouteLLM and spreadsheets write it (``prompt, device_correct, cloud_correct``
or any column names mapped by the caller), with row-numbered errors for bad values.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aios.files import read_text_file

__all__ = ["LabeledSet", "check_labels", "load_labeled_csv", "read_excluded_prompts"]


@dataclass(frozen=True)
class LabeledSet:
    """Prompts with per-prompt correctness of the device and the cloud tier."""

    prompts: list[str]
    device_correct: np.ndarray  # bool, shape (n,)
    cloud_correct: np.ndarray  # bool, shape (n,)

    def __len__(self) -> int:
        return len(self.prompts)

    def subset(self, idx: np.ndarray) -> LabeledSet:
        return LabeledSet(
            [self.prompts[i] for i in idx], self.device_correct[idx], self.cloud_correct[idx]
        )


_TRUE = {"true", "1", "yes", "y", "t", "1.0"}
_FALSE = {"false", "0", "no", "n", "f", "0.0"}


def _parse_bool(value: str, column: str, row: int) -> bool:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ValueError(
        f"column {column!r}, data row {row}: expected True/False/1/0/yes/no, got {value!r}"
    )


def _delimiter(header_line: str) -> str:
    """The header's separator: exports from spreadsheets in many locales use ';' or tabs."""
    counts = {sep: header_line.count(sep) for sep in (",", ";", "\t", "|")}
    best = max(counts, key=lambda sep: counts[sep])
    return best if counts[best] else ","


def load_labeled_csv(
    path: str | Path,
    *,
    prompt_col: str = "prompt",
    device_col: str = "device_correct",
    cloud_col: str = "cloud_correct",
    exclude: set[str] | None = None,
) -> LabeledSet:
    """Read a labeled CSV; rows whose prompt is in ``exclude`` are dropped.

    Row numbers in errors count data rows from 1 (the header is not a row), because
    quoted multi-line prompts make file line numbers misleading.
    """
    exclude = exclude or set()
    # read_text_file: regular files only, a byte-order mark dropped (spreadsheets write one,
    # and it would glue onto the first column's name), one clear error for every problem.
    text = read_text_file(path)
    try:
        return _read_labeled(text, prompt_col, device_col, cloud_col, exclude)
    except csv.Error as exc:
        raise ValueError(f"not a readable CSV: {exc}") from None


def _read_labeled(
    text: str, prompt_col: str, device_col: str, cloud_col: str, exclude: set[str]
) -> LabeledSet:
    prompts: list[str] = []
    dev: list[bool] = []
    cld: list[bool] = []
    header_line = text.split("\n", 1)[0]
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=_delimiter(header_line))
    header = reader.fieldnames or []
    if not header:
        raise ValueError("empty file: expected a header row naming the columns")
    for col in (prompt_col, device_col, cloud_col):
        if col not in header:
            raise ValueError(f"missing column {col!r} (columns: {header})")
    for row_no, row in enumerate(reader, start=1):
        prompt = row[prompt_col]
        if prompt is None:
            raise ValueError(f"data row {row_no}: missing value for {prompt_col!r}")
        if prompt in exclude:
            continue
        for col in (device_col, cloud_col):
            if row[col] is None:
                raise ValueError(f"data row {row_no}: missing value for {col!r}")
        prompts.append(prompt)
        dev.append(_parse_bool(row[device_col], device_col, row_no))
        cld.append(_parse_bool(row[cloud_col], cloud_col, row_no))
    if not prompts:
        raise ValueError("no labeled rows" + (" left after exclusions" if exclude else ""))
    return LabeledSet(prompts, np.array(dev, dtype=bool), np.array(cld, dtype=bool))


def read_excluded_prompts(path: str | Path, key: str = "eval_prompt") -> set[str]:
    """Prompts to exclude, from a JSONL file with one object per line holding ``key``."""
    out: set[str] = set()
    for line_no, line in enumerate(read_text_file(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"line {line_no}: not JSON ({exc.msg})") from None
        if not isinstance(obj, dict) or not isinstance(obj.get(key), str):
            raise ValueError(f"line {line_no}: expected an object with a string {key!r}")
        out.add(obj[key])
    return out


def check_labels(
    device_correct: Sequence[bool] | np.ndarray, cloud_correct: Sequence[bool] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    d = np.asarray(device_correct, dtype=bool)
    c = np.asarray(cloud_correct, dtype=bool)
    if d.shape != c.shape or d.ndim != 1 or len(d) == 0:
        raise ValueError(f"labels must be equal-length non-empty 1-D arrays: {d.shape}, {c.shape}")
    return d, c
