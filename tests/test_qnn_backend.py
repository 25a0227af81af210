"""The Qualcomm QNN backend on a real ONNX graph, executed by onnxruntime-qnn's HTP simulator.

The QNN HTP backend keeps process-wide state: once a session sets `soc_model`, later sessions
in the process run on that simulated SoC (at fp16 precision). The fp16 test therefore runs in
its own interpreter, and every other test here leaves `soc_model` unset.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aios import ConfigError, GenerationError, ModelError
from aios.backends import default_qnn
from aios.backends.default_onnxruntime import OnnxRuntimeBackend, package_version
from aios.backends.default_qnn import EP_NAME, PERF_MODE_RUN_KEY, QnnBackend
from aios.config import load_config
from aios.config.loader import default_config_path
from aios.config.schema import ModelSpec, QnnSettings
from aios.testing.tiny_onnx import TINY_CNN_OPS, onnx_spec, tiny_cnn, tiny_cnn_input

from .conftest import REPO

needs_qnn = pytest.mark.skipif(
    package_version("onnxruntime-qnn") is None,
    reason="onnxruntime-qnn is not installed (pip install -e '.[test]' on x86_64 Linux)",
)
FP32_TOL: dict[str, Any] = {"rtol": 1e-5, "atol": 1e-6}
# Probabilities in [0, 1]; the measured fp16 max error is 1.7e-4.
FP16_TOL: dict[str, Any] = {"rtol": 0, "atol": 5e-3}


def spec(model_id: str = "tiny-cnn") -> ModelSpec:
    return onnx_spec(model_id, Path("tiny_cnn.onnx"), ["qnn", "onnxruntime"])


@pytest.fixture
def model_path(tmp_path: Path) -> Path:
    """Conv+Relu+GlobalAveragePool+Flatten+Gemm+Softmax with a dynamic batch dimension 'N'."""
    pytest.importorskip("onnx")
    return tiny_cnn(tmp_path / "tiny_cnn.onnx")


def qnn(tmp_path: Path, **settings: Any) -> QnnBackend:
    backend = QnnBackend()
    backend.settings = QnnSettings(cache_dir=str(tmp_path / "qnn-cache"), **settings)
    return backend


def cpu_probs(path: Path, x: Any) -> Any:
    return OnnxRuntimeBackend().load(spec(), path).run({"x": x})["probs"]


@needs_qnn
def test_qnn_runs_the_whole_graph_on_the_htp_and_matches_the_cpu(
    tmp_path: Path, model_path: Path
) -> None:
    backend = qnn(tmp_path, context_cache=False)
    assert backend.probe().available, backend.probe().reason
    model = backend.load(spec(), model_path)
    # Every node went to QNN (layout Transposes included); none fell back to the CPU.
    assert list(model.node_assignment) == [EP_NAME]
    assert set(TINY_CNN_OPS) <= set(model.node_assignment[EP_NAME])
    assert model.session.get_providers()[0] == EP_NAME
    options = model.session.get_provider_options()[EP_NAME]
    assert options["backend_path"].endswith("libQnnHtp.so")
    x = tiny_cnn_input()
    out = model.run({"x": x})["probs"]
    np.testing.assert_allclose(out, cpu_probs(model_path, x), **FP32_TOL)
    assert out.shape == (1, 10) and abs(float(out.sum()) - 1.0) < 1e-5


@needs_qnn
def test_dynamic_dims_are_fixed_without_touching_the_source(
    tmp_path: Path, model_path: Path
) -> None:
    before = hashlib.sha256(model_path.read_bytes()).hexdigest()
    model = qnn(tmp_path).load(spec(), model_path)  # dynamic_dim_default = 1
    assert model.input_shapes == {"x": [1, 3, 16, 16]}
    assert list(model.node_assignment) == [EP_NAME]

    batch2 = qnn(tmp_path, static_shapes={"N": 2}).load(spec(), model_path)
    assert batch2.input_shapes == {"x": [2, 3, 16, 16]}
    x = tiny_cnn_input(2)
    np.testing.assert_allclose(batch2.run({"x": x})["probs"], cpu_probs(model_path, x), **FP32_TOL)
    with pytest.raises(
        GenerationError, match=r"model 'tiny-cnn' on qnn takes 'x' of shape \[2, 3, 16, 16\]"
    ):
        batch2.run({"x": tiny_cnn_input(1)})
    assert hashlib.sha256(model_path.read_bytes()).hexdigest() == before


@needs_qnn
def test_a_graph_qnn_cannot_take_fails_to_load_instead_of_running_on_the_cpu(
    tmp_path: Path, model_path: Path
) -> None:
    # Left dynamic, QNN declines every node: the load says so instead of quietly using the CPU.
    with pytest.raises(ModelError, match=r"model 'tiny-cnn': QNN \(htp\) took none of its 6 nodes"):
        qnn(tmp_path, dynamic_dim_default=None, context_cache=False).load(spec(), model_path)
    with pytest.raises(ModelError, match="fallback to CPU EP has been explicitly disabled"):
        qnn(tmp_path, dynamic_dim_default=None, cpu_fallback=False).load(spec(), model_path)
    assert not list((tmp_path / "qnn-cache").glob("*")), "no context is cached for a failed load"


@needs_qnn
def test_context_cache_is_written_once_and_reused(tmp_path: Path, model_path: Path) -> None:
    cache = tmp_path / "qnn-cache"
    x = tiny_cnn_input()
    first = qnn(tmp_path).load(spec(), model_path)
    assert first.context == "compiled"
    [ctx] = list(cache.iterdir())  # one file, no temporary left behind
    assert ctx.name.startswith("tiny-cnn-") and ctx.name.endswith("_ctx.onnx")
    written = ctx.stat().st_mtime_ns

    second = qnn(tmp_path).load(spec(), model_path)
    assert second.context == "cached"
    assert second.node_assignment == {EP_NAME: ["EPContext"]}  # the compiled QNN context
    assert ctx.stat().st_mtime_ns == written
    np.testing.assert_array_equal(second.run({"x": x})["probs"], first.run({"x": x})["probs"])

    # A setting that changes compilation gets its own context; a corrupt context is rebuilt.
    assert qnn(tmp_path, static_shapes={"N": 2}).load(spec(), model_path).context == "compiled"
    assert len(list(cache.iterdir())) == 2
    ctx.write_bytes(b"not a context")
    rebuilt = qnn(tmp_path).load(spec(), model_path)
    assert rebuilt.context == "compiled"
    np.testing.assert_allclose(rebuilt.run({"x": x})["probs"], cpu_probs(model_path, x), **FP32_TOL)
    assert qnn(tmp_path).load(spec(), model_path).context == "cached"


@needs_qnn
def test_every_power_mode_runs_with_its_htp_performance_mode(
    tmp_path: Path, model_path: Path
) -> None:
    model = qnn(tmp_path, htp_performance_mode="high_power_saver").load(spec(), model_path)
    assert model.session.get_provider_options()[EP_NAME]["backend_path"]
    x = tiny_cnn_input()
    expected = cpu_probs(model_path, x)
    # Unset: no per-call entry, so the session's configured htp_performance_mode applies.
    with pytest.raises(RuntimeError, match=PERF_MODE_RUN_KEY):
        model.run_options().get_run_config_entry(PERF_MODE_RUN_KEY)
    np.testing.assert_allclose(model.run({"x": x})["probs"], expected, **FP32_TOL)
    for power_mode, htp_mode in [
        ("performance", "burst"),
        ("balanced", "balanced"),
        ("power_saver", "power_saver"),
    ]:
        model.power_mode = power_mode
        assert model.run_options().get_run_config_entry(PERF_MODE_RUN_KEY) == htp_mode
        np.testing.assert_allclose(model.run({"x": x})["probs"], expected, **FP32_TOL)
    with pytest.raises(ValueError, match="power_mode must be one of"):
        model.power_mode = "turbo"


@needs_qnn
def test_bad_input_is_a_generation_error_naming_the_model(tmp_path: Path, model_path: Path) -> None:
    model = qnn(tmp_path).load(spec(), model_path)
    x = tiny_cnn_input()
    with pytest.raises(GenerationError, match=r"model 'tiny-cnn' needs inputs \['x'\]"):
        model.run({"image": x})
    with pytest.raises(GenerationError, match=r"model 'tiny-cnn': .*tensor\(double\)"):
        model.run({"x": x.astype(np.float64)})
    with pytest.raises(GenerationError, match="model 'tiny-cnn' on qnn takes 'x' of shape"):
        model.run({"x": tiny_cnn_input(size=8)})


@needs_qnn
def test_a_backend_library_that_cannot_run_here_is_reported(
    tmp_path: Path, model_path: Path
) -> None:
    cpu = qnn(tmp_path, backend="cpu").probe()
    assert not cpu.available
    assert "does not ship the QNN cpu backend (libQnnCpu.so not found" in cpu.reason
    # The Adreno GPU library ships but cannot initialise on this machine: the load says so.
    gpu = qnn(tmp_path, backend="gpu")
    assert gpu.probe().available
    with pytest.raises(ModelError, match=r"QNN \(gpu\) took none of its"):
        gpu.load(spec(), model_path)


@needs_qnn
def test_fp16_on_a_simulated_soc_matches_the_cpu_loosely(tmp_path: Path, model_path: Path) -> None:
    # soc_model changes the HTP state of the whole process: run it in a fresh interpreter.
    script = textwrap.dedent(
        f"""
        import json
        from pathlib import Path
        from aios.backends.default_qnn import QnnBackend
        from aios.testing.tiny_onnx import tiny_cnn_input
        from aios.config.schema import QnnSettings
        from tests.test_qnn_backend import spec
        backend = QnnBackend()
        backend.settings = QnnSettings(fp16=True, soc_model=57, context_cache=False)
        model = backend.load(spec(), Path({str(model_path)!r}))
        probs = model.run({{"x": tiny_cnn_input()}})["probs"]
        print(json.dumps({{"probs": probs.tolist(), "nodes": model.node_assignment}}))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert list(result["nodes"]) == [EP_NAME]
    probs = np.array(result["probs"], dtype=np.float32)
    np.testing.assert_allclose(probs, cpu_probs(model_path, tiny_cnn_input()), **FP16_TOL)


# -- probe and config: these run without onnxruntime-qnn ---------------------------------------
def test_probe_says_when_onnxruntime_qnn_is_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(default_qnn, "package_version", lambda name: None)
    avail = QnnBackend().probe()
    assert not avail.available
    assert avail.reason.startswith("onnxruntime-qnn is not installed (pip install onnxruntime-qnn")


def test_probe_says_when_onnxruntime_qnn_cannot_be_imported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(default_qnn, "package_version", lambda name: "2.7.0")
    monkeypatch.setitem(sys.modules, "onnxruntime_qnn", None)  # import raises ImportError
    avail = QnnBackend().probe()
    assert not avail.available
    assert avail.reason.startswith("onnxruntime-qnn 2.7.0 cannot be imported: ")


@needs_qnn
def test_probe_says_when_registration_fails_or_no_device_is_found(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import onnxruntime as ort

    def broken() -> None:
        raise RuntimeError("cannot load libonnxruntime_providers_qnn.so")

    monkeypatch.setattr(default_qnn, "_register_ep", broken)
    avail = QnnBackend().probe()
    assert not avail.available
    assert "failed to register with onnxruntime" in avail.reason
    assert "cannot load libonnxruntime_providers_qnn.so" in avail.reason

    monkeypatch.setattr(default_qnn, "_register_ep", lambda: None)
    monkeypatch.setattr(ort, "get_ep_devices", lambda: [])
    avail = QnnBackend().probe()
    assert not avail.available and "onnxruntime lists no QNN device" in avail.reason


def test_qnn_settings_come_from_the_oem_config(tmp_path: Path) -> None:
    cfg, _ = load_config(REPO / "oem_configs" / "qualcomm_flagship.toml")
    settings = cfg.backend_options.qnn
    assert (settings.soc_model, settings.fp16, settings.static_shapes) == (57, True, {"batch": 1})
    backend = QnnBackend()
    backend.configure(cfg)
    assert backend.settings is settings

    reference = default_config_path().read_text(encoding="utf-8")
    assert load_config(default_config_path())[0].backend_options.qnn == QnnSettings()
    for section, problem in [
        ('htp_performance_mode = "turbo"', "backend_options.qnn.htp_performance_mode: "),
        ("fp16 = true", "backend_options.qnn: `fp16` needs `soc_model`"),
        ("static_shapes = { batch = 0 }", "backend_options.qnn.static_shapes.batch: "),
        ('cache_dir = "relative/dir"', "backend_options.qnn.cache_dir: "),
    ]:
        bad = tmp_path / "oem.toml"
        bad.write_text(f"{reference}\n[backend_options.qnn]\n{section}\n", encoding="utf-8")
        with pytest.raises(ConfigError) as err:
            load_config(bad)
        assert any(p.startswith(problem) for p in err.value.problems), err.value.problems
