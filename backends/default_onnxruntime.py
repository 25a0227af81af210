"""ONNX models on onnxruntime's CPU execution provider (encoders, vision; used by later skills)."""

from __future__ import annotations

import functools
import importlib.util
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aios.backend import Availability, Backend, TensorModel
from aios.config.schema import ModelFormat, ModelSpec
from aios.errors import GenerationError, ModelError
from aios.hookspecs import hookimpl

if TYPE_CHECKING:
    from aios.testing.sample import Sample


class OnnxModel(TensorModel):
    # An onnxruntime session is safe to run from several threads at once.
    parallel = 8

    def __init__(self, spec: ModelSpec, backend_name: str, session: Any) -> None:
        super().__init__(spec, backend_name)
        self.session = session
        self.input_names = [i.name for i in session.get_inputs()]
        self.output_names = [o.name for o in session.get_outputs()]

    def run(self, inputs: dict[str, Any]) -> dict[str, Any]:
        missing = set(self.input_names) - set(inputs)
        if missing:
            raise GenerationError(
                f"model '{self.spec.id}' needs inputs {sorted(missing)}; got {sorted(inputs)}"
            )
        try:
            outputs = self.session.run(self.output_names, inputs)
        except Exception as exc:  # onnxruntime raises its own untyped errors on bad shapes
            raise GenerationError(f"model '{self.spec.id}': {exc}") from exc
        return dict(zip(self.output_names, outputs, strict=True))

    def close(self) -> None:
        self.session = None


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    description = "ONNX models on onnxruntime's CPU execution provider."
    formats = frozenset({ModelFormat.onnx})

    def probe(self) -> Availability:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            return Availability(False, f"onnxruntime is not installed ({exc})")
        return Availability(True, f"onnxruntime {ort.__version__}, CPUExecutionProvider")

    def session_options(self, spec: ModelSpec) -> tuple[Any, list[Any]]:
        """Session options and providers; NPU backends override this."""
        import onnxruntime as ort

        so = ort.SessionOptions()
        if spec.threads:
            so.intra_op_num_threads = spec.threads
        so.log_severity_level = 3  # warnings and below go nowhere near the user's terminal
        # onnxruntime's worker threads spin-wait after each run by default: on a phone that is
        # battery burnt for nothing between sporadic calls (a search query's single embedding).
        # Measured: no change in search latency, so nothing is paid for it.
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        library = extensions_library()  # custom ops some shipped encoders need
        if library is not None:
            so.register_custom_ops_library(library)
        return so, ["CPUExecutionProvider"]

    def footprint_mb(self, spec: ModelSpec, path: Path) -> float | None:
        from aios.memory.footprint import onnx_footprint

        # The file gives the weights; the activation arena depends on the batch and the graph
        # (measured: EfficientNet-Lite0's 17.7 MB of weights peak at 106 MB for 4 photos a
        # call and 270 MB for 16; the 72 MB text encoder at 170 MB under aios's 4,096-character
        # batches and 400 MB for 64 passages). So the file estimate is a floor, and the OEM's
        # measured `memory_mb` is admitted when it is larger.
        return max(onnx_footprint(path).total_mb, float(spec.memory_mb))

    @classmethod
    def conformance_sample(cls, workdir: Path) -> Sample:
        from aios.testing.samples import linear_relu_sample

        return linear_relu_sample(workdir, cls.name)

    def load(self, spec: ModelSpec, path: Path | None) -> OnnxModel:
        import onnxruntime as ort

        if path is None:
            raise ModelError(f"model '{spec.id}' has no ONNX file")

        if not path.is_file():
            raise ModelError(f"model '{spec.id}': file not found: {path}")
        so, providers = self.session_options(spec)
        try:
            session = ort.InferenceSession(str(path), sess_options=so, providers=providers)
        except Exception as exc:
            raise ModelError(f"model '{spec.id}': onnxruntime cannot load {path}: {exc}") from exc
        return OnnxModel(spec, self.name, session)


@functools.cache
def extensions_library() -> str | None:
    """Path of onnxruntime-extensions' custom-op library, or None when it is not installed.

    Found without importing the package: its ``__init__`` imports torch when torch is
    installed (1.5 s on every first model load of a process with the build extra).
    """
    try:
        spec = importlib.util.find_spec("onnxruntime_extensions")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        for lib in sorted(Path(folder).glob("_extensions_pydll*")):
            if lib.suffix in (".so", ".pyd", ".dylib"):
                return str(lib)
    try:
        import onnxruntime_extensions
    except ImportError:
        return None
    return str(onnxruntime_extensions.get_library_path())


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


@hookimpl
def register_backends(register: Any) -> None:
    register(OnnxRuntimeBackend)
