"""Structured output: a JSON schema turned into what a runtime needs to constrain generation.

On the device that is a llama.cpp GBNF grammar, converted by llama-cpp-python's own converter
(``llama_cpp.llama_grammar``). It covers a subset of JSON Schema: types, ``properties`` /
``required`` / ``additionalProperties``, ``anyOf`` / ``oneOf``, ``const``, ``enum``, local
``$ref`` / ``$defs``, ``items`` / ``prefixItems`` with ``minItems`` / ``maxItems``, string
``minLength`` / ``maxLength`` / ``pattern`` / ``format``. Keywords it does not know
(``title``, ``description``, ``minimum``, ``not``, ...) are ignored, so a grammar can be looser
than its schema and callers still validate the result; a schema it cannot convert at all is a
``GenerationError``, never the converter's traceback.

For cloud endpoints it is the request fields their server understands (``request_fields``).
"""

from __future__ import annotations

import importlib.util
import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from aios.errors import CloudUnavailableError, GenerationError

T = TypeVar("T")

# Agents reuse a handful of plan schemas; more distinct schemas than this in flight is unusual.
CACHED_SCHEMAS = 16

SUPPORTED = (
    "llama.cpp converts a subset of JSON Schema: types, properties/required, anyOf/oneOf, "
    "const, enum, local $ref/$defs, items with minItems/maxItems, string minLength/maxLength"
)


def schema_key(schema: dict[str, Any]) -> str:
    """The schema's compact JSON text, in its own key order: the cache key and what is converted.

    Not sorted: the grammar writes properties in schema order, and that order is the order the
    model generates them in (a "reasoning" field before its "answer"). A schema object built
    the same way (``model_json_schema()``) always gives the same text, so reuse still hits.
    """
    return json.dumps(schema, separators=(",", ":"))


class SchemaCache(Generic[T]):
    """The last ``size`` values built from schemas (grammars), by schema text."""

    def __init__(self, build: Callable[[str], T], size: int = CACHED_SCHEMAS) -> None:
        self._build = build
        self._size = size
        self._items: OrderedDict[str, T] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, schema: dict[str, Any]) -> T:
        key = schema_key(schema)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        # Built outside the lock: two threads may both build a new schema once, harmlessly.
        value = self._build(key)
        with self._lock:
            self._items[key] = value
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._items)


def to_gbnf(schema_json: str) -> str:
    """The llama.cpp GBNF grammar for a JSON schema given as text.

    Raises ``GenerationError`` when llama.cpp's converter cannot handle the schema and
    ``ImportError`` when llama-cpp-python is not installed.
    """
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        return json_schema_to_gbnf(schema_json)
    # The converter reports unsupported input with asserts, ValueError, or by tripping over a
    # value of the wrong shape (AttributeError, KeyError, TypeError).
    except (
        AssertionError,
        AttributeError,
        IndexError,
        KeyError,
        RecursionError,
        TypeError,
        ValueError,
    ) as exc:
        problem = str(exc) or type(exc).__name__
        if len(problem) > 200:
            problem = problem[:200] + "..."
        raise GenerationError(
            f"json_schema cannot be turned into a llama.cpp grammar: {problem}", hint=SUPPORTED
        ) from exc


_GBNF: SchemaCache[str] = SchemaCache(to_gbnf)


def gbnf(schema: dict[str, Any]) -> str:
    """``to_gbnf`` for a schema dict, cached by schema text."""
    return _GBNF.get(schema)


def _can_convert() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def request_fields(
    mode: str, schema: dict[str, Any], *, chat: bool, endpoint: str
) -> dict[str, Any]:
    """The fields an OpenAI-compatible request carries to constrain its output to ``schema``.

    ``mode`` is the endpoint's ``structured_output`` setting; see ``CloudEndpoint``.
    """
    if mode == "json_object" and not chat:
        # The json_object response_format exists on chat completions only; llama.cpp servers
        # take a grammar on both, so send one when this device can write it.
        mode = "grammar" if _can_convert() else "none"
    if mode == "json_schema":
        spec = {"name": "output", "schema": schema, "strict": True}
        return {"response_format": {"type": "json_schema", "json_schema": spec}}
    if mode == "json_object":
        return {"response_format": {"type": "json_object", "schema": schema}}
    if mode == "grammar":
        try:
            return {"grammar": gbnf(schema)}
        except ImportError:
            # Not the endpoint's fault, but it cannot be asked properly from here: the device
            # tier may still serve the request.
            raise CloudUnavailableError(
                f"endpoint '{endpoint}' takes structured output as a GBNF grammar, and "
                "llama-cpp-python is not installed here to convert the JSON schema",
                hint="pip install llama-cpp-python, or set the endpoint's structured_output "
                'to "json_schema" or "none"',
            ) from None
    return {}  # "none": the endpoint cannot constrain; the caller validates what comes back
