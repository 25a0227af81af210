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

onnx = pytest.importorskip("onnx")


def tiny_model(path: Path) -> Path:
    """y = relu(x @ W + b): a real ONNX graph, small enough to check by hand."""
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.array([[1.0, -1.0], [2.0, 0.5]], dtype=np.float32), "W")
    b = numpy_helper.from_array(np.array([0.5, -4.0], dtype=np.float32), "b")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["z"]),
            helper.make_node("Relu", ["z"], ["y"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        initializer=[w, b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def spec() -> ModelSpec:
    return ModelSpec.model_validate(
        {
            "id": "tiny",
            "capabilities": ["vision"],
            "parameters_b": 0.000001,
            "quantization": "fp32",
            "format": "onnx",
            "tier": "device",
            "memory_mb": 1,
            "context_length": 128,
            "backends": ["onnxruntime"],
            "source": {"path": "tiny.onnx"},
        }
    )


def test_onnxruntime_backend_runs_a_real_graph(tmp_path: Path) -> None:
    backend = OnnxRuntimeBackend()
    assert backend.probe().available
    model = backend.load(spec(), tiny_model(tmp_path / "tiny.onnx"))
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
