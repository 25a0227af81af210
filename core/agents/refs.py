"""Filling ``{{N}}`` / ``{{N.field}}`` references in a step's input from earlier outputs."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from aios.agents.plan import REF

_TEXT_FIELDS = ("text", "summary", "answer", "reply", "content")


class NothingToWorkOn(Exception):
    """A referenced output is empty: the step would run on nothing (a search found no notes)."""


def output_text(out: BaseModel) -> str:
    """The text an output stands for when a later step refers to it as a whole.

    An output model may define ``agent_text()``; otherwise its first text-like field is used,
    and failing that its JSON.
    """
    custom = getattr(out, "agent_text", None)
    if callable(custom):
        return str(custom())
    for name in _TEXT_FIELDS:
        value = getattr(out, name, None)
        if isinstance(value, str):
            return value
    return out.model_dump_json()


def _value(outputs: dict[int, tuple[str, BaseModel]], n: int, field: str | None) -> Any:
    skill, out = outputs[n]
    value: Any = output_text(out) if field is None else getattr(out, field)
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    elif isinstance(value, list):
        value = [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value]
    if value in ("", [], {}, None):
        what = f"'{field}' of step {n}" if field else f"step {n}"
        raise NothingToWorkOn(f"{what} ({skill}) returned nothing to work on")
    return value


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return ", ".join(str(v) for v in value)
    return json.dumps(value, ensure_ascii=False)


def resolve(value: Any, outputs: dict[int, tuple[str, BaseModel]]) -> Any:
    """``value`` with every reference filled in. A string that is one whole reference takes the
    referenced value as it is (a list stays a list); references inside text become text."""
    if isinstance(value, str):
        whole = REF.fullmatch(value.strip())
        if whole:
            return _value(outputs, int(whole.group(1)), whole.group(2))
        return REF.sub(lambda m: _as_text(_value(outputs, int(m.group(1)), m.group(2))), value)
    if isinstance(value, dict):
        return {k: resolve(v, outputs) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, outputs) for v in value]
    return value
