"""Qualcomm Hexagon NPU through onnxruntime's QNN execution provider (PyPI onnxruntime-qnn).

onnxruntime-qnn is a plugin EP: its library is registered with onnxruntime at probe time. Its
Linux x86_64 wheel carries the HTP backend as a simulator, so models really execute off-device.

Session options come from ``[backend_options.qnn]`` (``QnnSettings``). On load:

* named dynamic input dimensions are fixed (``static_shapes``, else ``dynamic_dim_default``)
  through onnxruntime's free-dimension overrides: the HTP needs static shapes, and the source
  file is never rewritten;
* with ``context_cache`` the compiled QNN context is written once as an EP context model
  (``<cache_dir>/<model>-<key>_ctx.onnx``) and later loads read it instead of compiling;
* which nodes QNN took is recorded; a load where QNN takes none fails rather than pretend.

Each call runs with the HTP performance mode mapped from the model's ``power_mode`` (set by
the orchestrator from device state), or the session's configured mode when none was set.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import structlog

from aios.backend import Availability
from aios.backends.default_onnxruntime import OnnxModel, OnnxRuntimeBackend, package_version
from aios.config.schema import HtpPerformanceMode, ModelFormat, ModelSpec, OEMConfig, QnnSettings
from aios.errors import BackendUnavailableError, GenerationError, ModelError
from aios.hookspecs import hookimpl

EP_NAME = "QNNExecutionProvider"
PERF_MODE_RUN_KEY = "qnn.htp_perf_mode"  # onnxruntime run option read before each run
POWER_MODES: dict[str, HtpPerformanceMode] = {
    "performance": HtpPerformanceMode.burst,
    "balanced": HtpPerformanceMode.balanced,
    "power_saver": HtpPerformanceMode.power_saver,
}
# QnnSettings.backend -> the onnxruntime_qnn function that locates that backend library.
LIBRARIES = {"htp": "get_qnn_htp_path", "gpu": "get_qnn_gpu_path", "cpu": "get_qnn_cpu_path"}
# Settings that change the compiled context; a cached context is reused only when they match.
COMPILE_SETTINGS = {
    "backend",
    "soc_model",
    "fp16",
    "graph_optimization",
    "static_shapes",
    "dynamic_dim_default",
    "cpu_fallback",
}

log = structlog.get_logger("aios.backends.qnn")
_registered = False
_register_lock = threading.Lock()


def _register_ep() -> Any:
    global _registered
    import onnxruntime as ort
    import onnxruntime_qnn as q

    with _register_lock:
        if not _registered:
            if not any(d.ep_name == EP_NAME for d in ort.get_ep_devices()):
                ort.register_execution_provider_library(q.get_ep_name(), q.get_library_path())
            _registered = True
    return q


def node_assignment(session: Any) -> dict[str, list[str]]:
    """Op types of the nodes each execution provider runs (a cached context is one EPContext)."""
    out: dict[str, list[str]] = {}
    for subgraph in session.get_provider_graph_assignment_info():
        out.setdefault(subgraph.ep_name, []).extend(n.op_type for n in subgraph.get_nodes())
    return out


class QnnModel(OnnxModel):
    def __init__(
        self, spec: ModelSpec, backend_name: str, session: Any, *, context: str, load_s: float
    ) -> None:
        super().__init__(spec, backend_name, session)
        self.context = context  # "compiled" (cache written), "cached" (cache read) or "off"
        self.load_s = load_s
        self.node_assignment = node_assignment(session)
        self.input_shapes = {i.name: list(i.shape) for i in session.get_inputs()}
        self._power_mode: str | None = None

    @property
    def power_mode(self) -> str:
        return self._power_mode or "balanced"

    @power_mode.setter
    def power_mode(self, value: str) -> None:
        if value not in POWER_MODES:
            raise ValueError(f"power_mode must be one of {sorted(POWER_MODES)}, not {value!r}")
        self._power_mode = value

    def run_options(self) -> Any:
        """RunOptions for one call: the HTP mode of ``power_mode``, once the orchestrator set it;
        until then the session's configured ``htp_performance_mode`` applies."""
        import onnxruntime as ort

        options = ort.RunOptions()
        if self._power_mode is not None:
            options.add_run_config_entry(PERF_MODE_RUN_KEY, POWER_MODES[self._power_mode].value)
        return options

    def run(self, inputs: dict[str, Any]) -> dict[str, Any]:
        missing = set(self.input_names) - set(inputs)
        if missing:
            raise GenerationError(
                f"model '{self.spec.id}' needs inputs {sorted(missing)}; got {sorted(inputs)}"
            )
        for name in self.input_names:
            expected = self.input_shapes[name]
            got = getattr(inputs[name], "shape", None)
            if got is not None and all(isinstance(d, int) for d in expected):
                if list(got) != expected:
                    raise GenerationError(
                        f"model '{self.spec.id}' on qnn takes '{name}' of shape {expected} "
                        f"(static for the NPU; see backend_options.qnn.static_shapes), "
                        f"got {list(got)}"
                    )
        try:
            outputs = self.session.run(self.output_names, inputs, self.run_options())
        except Exception as exc:  # onnxruntime raises its own untyped errors on bad inputs
            raise GenerationError(f"model '{self.spec.id}': {exc}") from exc
        return dict(zip(self.output_names, outputs, strict=True))


class QnnBackend(OnnxRuntimeBackend):
    name = "qnn"
    description = "Qualcomm Hexagon HTP via onnxruntime-qnn (simulated on x86_64)."
    formats = frozenset({ModelFormat.onnx})

    def __init__(self) -> None:
        self.settings = QnnSettings()
        self._compile_lock = threading.Lock()

    def configure(self, config: OEMConfig) -> None:
        self.settings = config.backend_options.qnn

    # -- availability -----------------------------------------------------------------------
    def probe(self) -> Availability:
        version = package_version("onnxruntime-qnn")
        if version is None:
            return Availability(
                False,
                "onnxruntime-qnn is not installed (pip install onnxruntime-qnn; its Linux "
                "x86_64 wheel includes the HTP simulator)",
            )
        try:
            import onnxruntime as ort
            import onnxruntime_qnn  # noqa: F401
        except ImportError as exc:
            return Availability(False, f"onnxruntime-qnn {version} cannot be imported: {exc}")
        try:
            q = _register_ep()
            devices = [d for d in ort.get_ep_devices() if d.ep_name == EP_NAME]
        except Exception as exc:
            return Availability(
                False,
                f"onnxruntime-qnn {version} failed to register with onnxruntime "
                f"{ort.__version__}: {exc}",
            )
        if not devices:
            return Availability(
                False, f"onnxruntime-qnn {version} registered but onnxruntime lists no QNN device"
            )
        backend = self.settings.backend
        library = Path(getattr(q, LIBRARIES[backend])())
        if not library.is_file():
            return Availability(
                False,
                f"onnxruntime-qnn {version} does not ship the QNN {backend} backend "
                f'({library.name} not found in {library.parent}); use backend = "htp"',
            )
        simulated = backend == "htp" and platform.machine().lower() in {"x86_64", "amd64"}
        sdk = getattr(getattr(q, "build_and_package_info", None), "qnn_version", "?")
        where = "simulated on x86_64" if simulated else "on device"
        return Availability(
            True,
            f"onnxruntime-qnn {version} (QNN SDK {sdk}), {backend} backend {where}, "
            f"{len(devices)} device(s)",
            details={
                "version": version,
                "qnn_sdk": sdk,
                "backend": backend,
                "library": str(library),
                "simulated": simulated,
            },
        )

    # -- sessions ----------------------------------------------------------------------------
    def provider_options(self) -> dict[str, str]:
        """QNN execution provider options from the settings (all values are strings)."""
        q = _register_ep()
        s = self.settings
        options = {"backend_path": getattr(q, LIBRARIES[s.backend])()}
        if s.backend == "htp":
            options["htp_performance_mode"] = s.htp_performance_mode.value
            options["enable_htp_fp16_precision"] = "1" if s.fp16 else "0"
            if s.soc_model is not None:
                options["soc_model"] = str(s.soc_model)
            if s.graph_optimization is not None:
                options["htp_graph_finalization_optimization_mode"] = str(s.graph_optimization)
        return options

    def session_options(
        self,
        spec: ModelSpec,
        *,
        dims: dict[str, int] | None = None,
        entries: dict[str, str] | None = None,
    ) -> tuple[Any, list[Any]]:
        import onnxruntime as ort

        so, _ = super().session_options(spec)
        so.add_session_config_entry("session.record_ep_graph_assignment_info", "1")
        if not self.settings.cpu_fallback:
            so.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
        for dim, size in (dims or {}).items():
            so.add_free_dimension_override_by_name(dim, size)
        for key, value in (entries or {}).items():
            so.add_session_config_entry(key, value)
        devices = [d for d in ort.get_ep_devices() if d.ep_name == EP_NAME]
        so.add_provider_for_devices(devices, self.provider_options())
        return so, []

    def static_dims(self, spec: ModelSpec, path: Path) -> dict[str, int]:
        """Values for the model's named dynamic input dimensions, from the settings."""
        import onnxruntime as ort

        so, _ = super().session_options(spec)
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        try:
            inputs = ort.InferenceSession(
                str(path), sess_options=so, providers=["CPUExecutionProvider"]
            ).get_inputs()
        except Exception as exc:
            raise ModelError(f"model '{spec.id}': onnxruntime cannot load {path}: {exc}") from exc
        dims: dict[str, int] = {}
        for inp in inputs:
            for axis, dim in enumerate(inp.shape):
                if isinstance(dim, str):
                    value = self.settings.static_shapes.get(dim, self.settings.dynamic_dim_default)
                    if value is not None:
                        dims[dim] = value
                elif dim is None:
                    log.warning("qnn.unnamed_dynamic_dim", model=spec.id, input=inp.name, axis=axis)
        return dims

    def _session(
        self, spec: ModelSpec, path: Path, dims: dict[str, int], entries: dict[str, str]
    ) -> Any:
        import onnxruntime as ort

        so, _ = self.session_options(spec, dims=dims, entries=entries)
        try:
            # enable_fallback=0: never let onnxruntime quietly retry on the CPU alone.
            return ort.InferenceSession(str(path), sess_options=so, enable_fallback=0)
        except Exception as exc:
            raise ModelError(
                f"model '{spec.id}': onnxruntime-qnn cannot load {path}: {exc}"
            ) from exc

    def cache_path(self, spec: ModelSpec, path: Path) -> Path:
        """Where the compiled context of ``spec`` from ``path`` lives under these settings."""
        from aios.sources import aios_home

        st = path.stat()
        key = json.dumps(
            {
                "source": str(path.resolve()),
                "size": st.st_size,
                "mtime_ns": st.st_mtime_ns,
                "settings": self.settings.model_dump(mode="json", include=COMPILE_SETTINGS),
                "onnxruntime": package_version("onnxruntime"),
                "onnxruntime-qnn": package_version("onnxruntime-qnn"),
            },
            sort_keys=True,
        )
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        folder = self.settings.cache_dir
        base = Path(folder).expanduser() if folder else aios_home() / "qnn"
        return base / f"{spec.id}-{digest}_ctx.onnx"

    def _compile(self, spec: ModelSpec, path: Path, ctx: Path | None) -> Any:
        dims = self.static_dims(spec, path)
        if ctx is None:
            return self._session(spec, path, dims, {})
        ctx.parent.mkdir(parents=True, exist_ok=True)
        # onnxruntime refuses to overwrite a context file: write a private one, then rename.
        tmp = ctx.with_name(f".{os.getpid()}-{threading.get_ident()}-{ctx.name}")
        entries = {
            "ep.context_enable": "1",
            "ep.context_file_path": str(tmp),
            "ep.context_embed_mode": "1",  # one file holding the QNN context binary
        }
        try:
            session = self._session(spec, path, dims, entries)
            if EP_NAME in node_assignment(session) and tmp.is_file():
                os.replace(tmp, ctx)
        finally:
            tmp.unlink(missing_ok=True)
        log.info("qnn.compiled", model=spec.id, static_dims=dims, context=str(ctx))
        return session

    def load(self, spec: ModelSpec, path: Path | None) -> QnnModel:
        if path is None:
            raise ModelError(f"model '{spec.id}' has no ONNX file")
        if not path.is_file():
            raise ModelError(f"model '{spec.id}': file not found: {path}")
        avail = self.probe()
        if not avail.available:
            raise BackendUnavailableError(f"backend 'qnn' cannot run here: {avail.reason}")
        t0 = time.perf_counter()
        if not self.settings.context_cache:
            session, context = self._compile(spec, path, None), "off"
        else:
            ctx = self.cache_path(spec, path)
            with self._compile_lock:
                session, context = None, "compiled"
                if ctx.is_file():
                    try:
                        session, context = self._session(spec, ctx, {}, {}), "cached"
                    except ModelError as exc:
                        log.warning(
                            "qnn.cache_unusable", model=spec.id, path=str(ctx), error=str(exc)
                        )
                        ctx.unlink(missing_ok=True)
                if session is None:
                    session = self._compile(spec, path, ctx)
        model = QnnModel(spec, self.name, session, context=context, load_s=time.perf_counter() - t0)
        placed = model.node_assignment
        if EP_NAME not in placed:
            model.close()
            total = sum(len(ops) for ops in placed.values())
            raise ModelError(
                f"model '{spec.id}': QNN ({self.settings.backend}) took none of its {total} "
                "nodes, so nothing would run on the NPU; onnxruntime's log says why (an "
                "unsupported op, a dynamic shape, or a QNN backend that failed to set up)"
            )
        log.info(
            "qnn.loaded",
            model=spec.id,
            context=context,
            load_ms=round(model.load_s * 1000, 1),
            nodes={ep: len(ops) for ep, ops in placed.items()},
            cpu_ops=sorted(Counter(placed.get("CPUExecutionProvider", [])).items()),
        )
        return model


@hookimpl
def register_backends(register: Any) -> None:
    register(QnnBackend)
