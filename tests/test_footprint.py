"""Footprint estimates from the model file, checked against measured RSS.

GGUF estimates must land within ±15 %; ONNX ones within -10 %/+30 % (see the test for why)."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from aios import ModelError, Orchestrator
from aios.memory.footprint import estimate
from aios.memory.gguf import read_metadata

from .conftest import build_or_skip

# Both measuring scripts read the process's own resident (VmRSS) and peak (VmHWM) memory.
STATUS_MB = r"""
def status_mb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
"""

MEASURE = (
    STATUS_MB
    + r"""
import json, sys
from pathlib import Path
from aios.backends.default_llama_cpp import LlamaCppBackend
from aios.backend import GenerationRequest
from aios.config.schema import ModelSpec

spec = ModelSpec.model_validate(json.loads(sys.argv[1]))
backend = LlamaCppBackend()
backend.probe()  # imports llama_cpp: part of the baseline, not of the model
base = status_mb("VmRSS")
model = backend.load(spec, Path(sys.argv[2]))
# A prompt of ~500 tokens fills a whole batch: the worst case the estimate must cover.
for _ in model.stream(GenerationRequest(prompt="Once upon a time, " * 100, max_tokens=16)):
    pass
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking parent across exec.
peak = status_mb("VmHWM")
print(json.dumps({"measured_mb": peak - base}))
"""
)


@pytest.mark.model
@pytest.mark.parametrize("model_id", ["gemma3-270m", "smollm2-135m-instruct"])
@pytest.mark.parametrize("n_ctx", [2048, 4096])
def test_estimate_matches_measured_rss(reference: Orchestrator, model_id: str, n_ctx: int) -> None:
    from aios import sources

    spec = reference.config.model(model_id).model_copy(update={"context_length": n_ctx})
    path = sources.resolve(spec, reference.base_dir, reference.models.cache_dir)
    est = estimate(path, "gguf", n_ctx)
    assert est is not None
    proc = subprocess.run(
        [sys.executable, "-c", MEASURE, spec.model_dump_json(), str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    measured = json.loads(proc.stdout.strip().splitlines()[-1])["measured_mb"]
    error = (est.total_mb - measured) / measured
    assert abs(error) <= 0.15, f"estimate {est.total_mb:.0f} MB vs measured {measured:.0f} MB"


# The ONNX models' footprint is the OEM's measured memory_mb (the file gives only a floor), so
# the shipped numbers are checked against what aios's own callers make the models take: the
# encoder fed 64 indexer-sized passages and a 20,000-character text, the tagger 16 photos.
MEASURE_ONNX = (
    STATUS_MB
    + r"""
import json, sys
import numpy as np
import onnxruntime  # part of the baseline, not of the model
from PIL import Image
from aios import Orchestrator, sources
from aios.vision.tagging import make_tagger

orch = Orchestrator.from_file(None, ledger=False)
spec = orch.config.model(sys.argv[1])
rng = np.random.default_rng(0)
words = "the quick brown fox jumps over a lazy dog near the river 我们 去年 夏天".split()
texts = [" ".join(rng.choice(words, size=160))[:800] for _ in range(64)] + ["word " * 4000]
shape = (480, 640, 3)
photos = [Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)) for _ in range(16)]
base = status_mb("VmRSS")
if sys.argv[2] == "embed":
    orch.invoke("embed", {"texts": texts})
else:
    make_tagger(orch.load_model(spec.id).handle.run)(photos)
path = sources.resolve(spec, orch.base_dir, orch.models.cache_dir, orch.models.builders)
estimate = orch.backend("onnxruntime").footprint_mb(spec, path)
print(json.dumps({"measured_mb": status_mb("VmHWM") - base, "estimate_mb": estimate}))
orch.close()
"""
)


@pytest.mark.model
@pytest.mark.parametrize(
    "model_id, use",
    [
        ("use-v3-multilingual", "embed"),
        ("efficientnet-lite0", "tag"),
        ("efficientnet-lite0-int8", "tag"),
    ],
)
def test_onnx_memory_mb_matches_measured_rss(
    reference: Orchestrator, model_id: str, use: str
) -> None:
    from aios import sources

    spec = reference.config.model(model_id)
    if spec.source and spec.source.builder:
        # Into the model dir the measured process reads: a fresh machine has no EfficientNet
        # files until someone builds them.
        build_or_skip(reference.models.builders[spec.source.builder], reference.models.cache_dir)
    sources.resolve(spec, reference.base_dir, reference.models.cache_dir, reference.models.builders)
    proc = subprocess.run(
        [sys.executable, "-c", MEASURE_ONNX, model_id, use],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    error = (got["estimate_mb"] - got["measured_mb"]) / got["measured_mb"]
    # The same run's peak varies with allocator reuse and thread scheduling: efficientnet-lite0
    # measured 106-112 MB in quiet runs and 90 MB once inside a full suite. The budget must
    # cover the top of that spread, so the band allows more over than under: an estimate 10 %
    # short would let the memory governor overcommit, 30 % over only loads one model fewer.
    assert -0.10 <= error <= 0.30, (
        f"{model_id}: footprint {got['estimate_mb']:.0f} MB vs measured {got['measured_mb']:.0f} MB"
    )


def test_metadata_of_a_real_gguf(reference: Orchestrator) -> None:
    from aios import sources

    spec = reference.config.model("smollm2-135m-instruct")
    path = sources.resolve(spec, reference.base_dir, reference.models.cache_dir)
    meta = read_metadata(path)
    assert meta["general.architecture"] == "llama"
    assert meta["llama.block_count"] == 30 and meta["tokenizer.ggml.tokens"] == 49152


def _gguf(tmp_path: Path, body: bytes, name: str = "m.gguf") -> Path:
    path = tmp_path / name
    path.write_bytes(body)
    return path


@pytest.mark.parametrize(
    "body, message",
    [
        (b"GGUF" + struct.pack("<I", 3), "file ends inside the header"),
        (b"GGUF" + struct.pack("<IQQ", 3, 0, 10**9), "1000000000 metadata entries"),
        (b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 10**12), "string of"),
        (b"GGUF" + struct.pack("<I", 99) + b"\0" * 16, "unsupported version 99"),
        (b"NOPE" + b"\0" * 32, "is not a GGUF file"),
        (
            b"GGUF"
            + struct.pack("<IQQ", 3, 0, 1)
            + struct.pack("<Q", 1)
            + b"k"
            + struct.pack("<IIQ", 9, 8, 10**7),
            "file ends inside the header|runs past the end",
        ),
    ],
    ids=["truncated", "huge-count", "huge-string", "version", "magic", "lying-array"],
)
def test_lying_or_corrupt_headers_are_clear_errors(
    tmp_path: Path, body: bytes, message: str
) -> None:
    with pytest.raises(ModelError, match=message):
        read_metadata(_gguf(tmp_path, body))


def test_missing_architecture_fields(tmp_path: Path) -> None:
    body = b"GGUF" + struct.pack("<IQQ", 3, 0, 0)
    with pytest.raises(ModelError, match="no general.architecture"):
        estimate(_gguf(tmp_path, body), "gguf", 2048)


@pytest.mark.model
def test_models_ls_shows_estimates_and_fit() -> None:
    from .conftest import run_cli

    proc = run_cli("models", "ls", "--json")
    assert proc.returncode == 0, proc.stderr
    body = json.loads(proc.stdout)
    rows = {r["id"]: r for r in body["models"]}
    assert body["budget_mb"] <= 4096
    gemma = rows["gemma3-270m"]
    assert gemma["fits"] is True and 300 < gemma["estimated_mb"] < 450
