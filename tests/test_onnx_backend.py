"""The onnxruntime CPU backend (the hook point ONNX skills build on) and the NPU probes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aios import GenerationError, ModelError, Orchestrator
from aios.backends.default_neuropilot import NeuroPilotBackend
from aios.backends.default_onnxruntime import OnnxRuntimeBackend
from aios.backends.default_qnn import QnnBackend
from aios.batching import padded_batches
from aios.config.schema import ModelSpec
from aios.context import EMBED_MAX_CHARS
from aios.testing.tiny_onnx import linear_relu, onnx_spec

onnx = pytest.importorskip("onnx")


def spec() -> ModelSpec:
    return onnx_spec("tiny", Path("tiny.onnx"), ["onnxruntime"])


def test_onnxruntime_backend_runs_a_real_graph(tmp_path: Path) -> None:
    backend = OnnxRuntimeBackend()
    assert backend.probe().available
    model = backend.load(spec(), linear_relu(tmp_path / "tiny.onnx"))
    out = model.run({"x": np.array([[1.0, 2.0]], dtype=np.float32)})
    # [1, 2] @ W = [5, 0]; + b = [5.5, -4]; relu = [5.5, 0]
    np.testing.assert_allclose(out["y"], [[5.5, 0.0]])
    with pytest.raises(GenerationError, match="needs inputs \\['x'\\]"):
        model.run({"wrong": np.zeros((1, 2), dtype=np.float32)})


def test_onnxruntime_backend_rejects_a_corrupt_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf")
    with pytest.raises(ModelError, match="model 'tiny': onnxruntime cannot load"):
        OnnxRuntimeBackend().load(spec(), bad)


def test_npu_backends_probe_honestly() -> None:
    qnn = QnnBackend().probe()
    try:
        import onnxruntime_qnn  # noqa: F401
    except ImportError:
        assert not qnn.available and "onnxruntime-qnn is not installed" in qnn.reason
    neuro = NeuroPilotBackend().probe()
    assert not neuro.available
    assert "NeuroPilot" in neuro.reason


def test_unavailable_backends_show_their_reason_in_the_cli(reference: Orchestrator) -> None:
    avail = reference.probe("neuropilot")
    assert avail is not None and not avail.available and avail.reason


def test_onnx_footprint_is_at_least_the_declared_memory(tmp_path: Path) -> None:
    """The file gives weights only; activations make an OEM's measured figure the floor."""
    path = linear_relu(tmp_path / "tiny.onnx")
    backend = OnnxRuntimeBackend()
    small = spec()  # declares 1 MB: far more than the few hundred bytes of weights
    assert backend.footprint_mb(small, path) == 1.0
    declared = small.model_copy(update={"memory_mb": 260})
    assert backend.footprint_mb(declared, path) == 260.0


@given(
    lengths=st.lists(st.integers(0, 900), max_size=80),
    max_count=st.integers(1, 64),
    max_padded=st.integers(1, 5000),
)
def test_padded_batches_cover_everything_within_both_bounds(
    lengths: list[int], max_count: int, max_padded: int
) -> None:
    batches = padded_batches(lengths, max_count, max_padded)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert len(b) <= max_count
        widest = max(max(lengths[i] for i in b), 1)
        assert len(b) == 1 or len(b) * widest <= max_padded, (b, [lengths[i] for i in b])


@pytest.mark.model
def test_embed_batches_by_length_and_keeps_the_callers_order(reference: Orchestrator) -> None:
    long = "The Great Wall at Mutianyu is steep but quiet in the early morning. " * 90
    texts = ["西湖的秋天", long, "a short note", long[:800], long[:4096] + " and then more"]
    vecs = np.array(reference.invoke("embed", {"texts": texts}).output.vectors)
    alone = np.array([reference.invoke("embed", {"texts": [t]}).output.vectors[0] for t in texts])
    # Padding in a batch moves a vector a little (USE v3), never to another text's place.
    cos = vecs @ alone.T
    assert np.all(np.diag(cos) > 0.99), np.diag(cos)
    assert np.all(cos[:4, :4].argmax(axis=1) == np.arange(4))  # (4 reads as 1: see below)
    # Past EMBED_MAX_CHARS a text reads as its first EMBED_MAX_CHARS characters.
    assert len(long) > EMBED_MAX_CHARS and float(alone[4] @ alone[1]) > 0.9999
