"""The onnxruntime CPU backend (the hook point ONNX skills build on) and the NPU probes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aios import GenerationError, ModelError, Orchestrator
from aios.backends.default_neuropilot import NeuroPilotBackend
from aios.backends.default_onnxruntime import OnnxRuntimeBackend
from aios.backends.default_qnn import QnnBackend
from aios.config.schema import ModelSpec
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
