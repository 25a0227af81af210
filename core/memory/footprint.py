"""Estimate a model's resident memory from its file, before loading it.

GGUF (llama.cpp), measured on this project's models (see tests/test_footprint.py):
  weights      the file size (mmapped, and every page is touched on the first forward pass)
  KV cache     n_ctx * n_layer * (k_len + v_len) * n_kv_heads * 2 bytes (f16)
  vocabulary   ~212 bytes per token (llama.cpp's token tables and maps)
  compute      n_batch * (4 * n_ff + 8 * n_embd) * 4 bytes (activations of a full batch)
  runtime      17 MiB (context, samplers, graph)
ONNX (onnxruntime): initializer bytes (the file) plus 25% for arena and activations.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from aios.errors import ModelError
from aios.memory.gguf import read_metadata

MIB = 1 << 20
N_BATCH = 512
RUNTIME_BYTES = 17 * MIB
VOCAB_BYTES_PER_TOKEN = 212
ONNX_OVERHEAD = 0.25


@dataclass(frozen=True)
class Footprint:
    weights_mb: float
    kv_cache_mb: float
    overhead_mb: float

    @property
    def total_mb(self) -> float:
        return self.weights_mb + self.kv_cache_mb + self.overhead_mb


def _int(meta: dict, key: str, path: Path, default: int | None = None) -> int:
    value = meta.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ModelError(f"{path}: GGUF metadata {key} is missing or invalid ({value!r})")
    return value


def gguf_footprint(path: Path, n_ctx: int) -> Footprint:
    meta = read_metadata(path)
    arch = meta.get("general.architecture")
    if not isinstance(arch, str):
        raise ModelError(f"{path}: GGUF metadata has no general.architecture")
    n_layer = _int(meta, f"{arch}.block_count", path)
    n_embd = _int(meta, f"{arch}.embedding_length", path)
    n_head = _int(meta, f"{arch}.attention.head_count", path, 1) or 1
    n_kv = _int(meta, f"{arch}.attention.head_count_kv", path, n_head)
    k_len = _int(meta, f"{arch}.attention.key_length", path, n_embd // n_head)
    v_len = _int(meta, f"{arch}.attention.value_length", path, k_len)
    n_ff = meta.get(f"{arch}.feed_forward_length", 4 * n_embd)
    n_ff = max(n_ff) if isinstance(n_ff, list) else n_ff  # per-layer lists in some models
    vocab = meta.get("tokenizer.ggml.tokens", 0)
    vocab = vocab if isinstance(vocab, int) else 0
    kv = n_ctx * n_layer * (k_len + v_len) * n_kv * 2
    overhead = (
        RUNTIME_BYTES + vocab * VOCAB_BYTES_PER_TOKEN + N_BATCH * (4 * int(n_ff) + 8 * n_embd) * 4
    )
    return Footprint(meta["gguf.file_size"] / MIB, kv / MIB, overhead / MIB)


def onnx_footprint(path: Path) -> Footprint:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ModelError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return Footprint(size / MIB, 0.0, size * ONNX_OVERHEAD / MIB)


@functools.lru_cache(maxsize=64)
def _cached_gguf(path: Path, size: int, mtime: float, n_ctx: int) -> Footprint:
    return gguf_footprint(path, n_ctx)


def gguf_footprint_cached(path: Path, n_ctx: int) -> Footprint:
    try:
        st = path.stat()
    except OSError as exc:
        raise ModelError(f"{path}: cannot read ({exc.strerror or exc})") from None
    # Reading a 262k-token vocabulary takes ~0.3 s: once per file version is enough.
    return _cached_gguf(path, st.st_size, st.st_mtime, n_ctx)


def estimate(path: Path, fmt: str, n_ctx: int) -> Footprint | None:
    """The footprint of a model file, or None for formats sized only by their config."""
    if fmt == "gguf":
        return gguf_footprint_cached(path, n_ctx)
    if fmt == "onnx":
        return onnx_footprint(path)
    return None
