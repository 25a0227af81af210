"""Tiny real ONNX graphs built in code, for backend tests, the conformance suite and benches.

``linear_relu``: ``y = relu(x @ W + b)``, small enough to check by hand (QNN's HTP takes it as
Gemm + Relu). ``tiny_cnn``: a seeded image classifier with a dynamic batch dimension. Needs the
``onnx`` package (the ``test`` extra); nothing at runtime imports this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aios.config.schema import ModelSpec

WEIGHT = ((1.0, -1.0), (2.0, 0.5))
BIAS = (0.5, -4.0)


def linear_relu(
    path: Path,
    weight: Any = WEIGHT,
    bias: Any = BIAS,
    *,
    opset: int = 17,
    ir_version: int = 8,
) -> Path:
    """Write ``y = relu(x @ weight + bias)`` to ``path``: input ``x`` float32 ``[1, n]``, output
    ``y`` float32 ``[1, m]`` for an ``n x m`` weight. Returns ``path``."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    w = np.asarray(weight, dtype=np.float32)
    b = np.asarray(bias, dtype=np.float32)
    n, m = w.shape
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["z"]),
            helper.make_node("Relu", ["z"], ["y"]),
        ],
        "linear_relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, m])],
        initializer=[numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b")],
    )
    return _save(graph, path, opset, ir_version)


def linear_relu_reference(x: Any, weight: Any = WEIGHT, bias: Any = BIAS) -> Any:
    """What ``linear_relu``'s graph computes, in numpy."""
    import numpy as np

    w = np.asarray(weight, dtype=np.float32)
    return np.maximum(np.asarray(x, dtype=np.float32) @ w + np.asarray(bias, np.float32), 0)


TINY_CNN_OPS = ("Conv", "Relu", "GlobalAveragePool", "Flatten", "Gemm", "Softmax")


def tiny_cnn(
    path: Path,
    *,
    batch: str | int = "N",
    channels: int = 3,
    size: int = 16,
    filters: int = 8,
    classes: int = 10,
    seed: int = 0,
) -> Path:
    """Write an image classifier: Conv 3x3 + Relu + GlobalAveragePool + Flatten + Gemm + Softmax.

    Input ``x`` is ``[batch, channels, size, size]`` float32 and output ``probs`` is
    ``[batch, classes]``; a string ``batch`` makes that dimension dynamic under that name. The
    weights come from a seeded generator, so the same arguments give the same file.
    """
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weights = {
        "W": rng.standard_normal((filters, channels, 3, 3)).astype(np.float32) * 0.3,
        "B": rng.standard_normal(filters).astype(np.float32) * 0.1,
        "FW": rng.standard_normal((classes, filters)).astype(np.float32) * 0.5,
        "FB": rng.standard_normal(classes).astype(np.float32) * 0.1,
    }
    nodes = [
        helper.make_node("Conv", ["x", "W", "B"], ["conv"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["conv"], ["relu"], name="relu"),
        helper.make_node("GlobalAveragePool", ["relu"], ["pool"], name="pool"),
        helper.make_node("Flatten", ["pool"], ["flat"], axis=1, name="flatten"),
        helper.make_node("Gemm", ["flat", "FW", "FB"], ["logits"], transB=1, name="fc"),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1, name="softmax"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, channels, size, size])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [batch, classes])],
        initializer=[numpy_helper.from_array(a, name) for name, a in weights.items()],
    )
    return _save(graph, path)


def tiny_cnn_input(batch: int = 1, *, channels: int = 3, size: int = 16, seed: int = 1) -> Any:
    """A deterministic float32 input batch for ``tiny_cnn``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, channels, size, size)).astype(np.float32)


def onnx_spec(model_id: str, path: Path, backends: list[str]) -> ModelSpec:
    """A device model entry for an ONNX file built here (tiny: 1 MB budget, no tokens)."""
    return ModelSpec.model_validate(
        {
            "id": model_id,
            "capabilities": ["vision"],
            "parameters_b": 0.000001,
            "quantization": "fp32",
            "format": "onnx",
            "tier": "device",
            "memory_mb": 1,
            "context_length": 128,
            "backends": backends,
            "source": {"path": str(path)},
        }
    )


def _save(graph: Any, path: Path, opset: int = 17, ir_version: int = 8) -> Path:
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir_version  # readable by every onnxruntime aios supports
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)
    return path
