"""Read the metadata of a GGUF file (no weights) to size the model before loading it.

The header is untrusted input: every count and length is bounded, and a short or inconsistent
file raises ``ModelError`` naming the file instead of allocating or looping on its word.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, BinaryIO

from aios.errors import ModelError

_SCALARS: dict[int, str] = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9
_MAX_KV = 100_000
_MAX_STRING = 64 << 20
_MAX_ARRAY = 50_000_000
# Arrays we only need the length of (the vocabulary): skip their bodies, keep the count.
_COUNT_ONLY = (
    "tokenizer.ggml.tokens",
    "tokenizer.ggml.scores",
    "tokenizer.ggml.token_type",
    "tokenizer.ggml.merges",
)


class _Reader:
    def __init__(self, f: BinaryIO, path: Path, size: int) -> None:
        self.f, self.path, self.size = f, path, size

    def fail(self, why: str) -> ModelError:
        return ModelError(f"{self.path}: corrupt GGUF header ({why})")

    def take(self, n: int) -> bytes:
        data = self.f.read(n)
        if len(data) != n:
            raise self.fail("file ends inside the header")
        return data

    def unpack(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        n = self.unpack("<Q")
        if n > _MAX_STRING:
            raise self.fail(f"string of {n} bytes")
        return self.take(n).decode("utf-8", "replace")

    def value(self, kind: int, count_only: bool = False) -> Any:
        if kind in _SCALARS:
            return self.unpack(_SCALARS[kind])
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            elem, n = self.unpack("<I"), self.unpack("<Q")
            if n > _MAX_ARRAY:
                raise self.fail(f"array of {n} items")
            if count_only:
                self.skip_array(elem, n)
                return n
            return [self.value(elem) for _ in range(n)]
        raise self.fail(f"unknown value type {kind}")

    def skip_array(self, elem: int, n: int) -> None:
        if elem in _SCALARS:
            self.f.seek(struct.calcsize(_SCALARS[elem]) * n, 1)
        elif elem == _STRING:
            for _ in range(n):
                length = self.unpack("<Q")
                if length > _MAX_STRING:
                    raise self.fail(f"string of {length} bytes")
                self.f.seek(length, 1)
        else:
            raise self.fail(f"nested array of type {elem}")
        if self.f.tell() > self.size:
            raise self.fail("array runs past the end of the file")


def read_metadata(path: Path) -> dict[str, Any]:
    """The key/value metadata of a GGUF file; the vocabulary arrays are reduced to counts."""
    try:
        size = path.stat().st_size
        f = path.open("rb")
    except OSError as exc:
        raise ModelError(f"{path}: cannot read ({exc.strerror or exc})") from None
    with f:
        r = _Reader(f, path, size)
        if r.take(4) != b"GGUF":
            raise ModelError(f"{path} is not a GGUF file (corrupt or wrong format)")
        version = r.unpack("<I")
        if version not in (2, 3):
            raise r.fail(f"unsupported version {version}")
        r.unpack("<Q")  # tensor count
        kv_count = r.unpack("<Q")
        if kv_count > _MAX_KV:
            raise r.fail(f"{kv_count} metadata entries")
        meta: dict[str, Any] = {"gguf.version": version, "gguf.file_size": size}
        for _ in range(kv_count):
            key = r.string()
            kind = r.unpack("<I")
            meta[key] = r.value(kind, count_only=key in _COUNT_ONLY)
    return meta
