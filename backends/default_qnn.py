"""Qualcomm Hexagon NPU through onnxruntime's QNN execution provider (PyPI onnxruntime-qnn).

onnxruntime-qnn is a plugin EP: its library is registered with onnxruntime at probe time. Its
Linux x86_64 wheel carries the HTP backend as a simulator, so models really execute off-device.
"""

from __future__ import annotations

import threading
from typing import Any

from aios.backend import Availability
from aios.backends.default_onnxruntime import OnnxRuntimeBackend, package_version
from aios.config.schema import ModelFormat, ModelSpec
from aios.errors import BackendUnavailableError
from aios.hookspecs import hookimpl

EP_NAME = "QNNExecutionProvider"
_registered = False
_register_lock = threading.Lock()


def _register_ep() -> Any:
    global _registered
    import onnxruntime as ort
    import onnxruntime_qnn as q

    with _register_lock:
        if not _registered:
            ort.register_execution_provider_library(q.get_ep_name(), q.get_library_path())
            _registered = True
    return q


class QnnBackend(OnnxRuntimeBackend):
    name = "qnn"
    description = "Qualcomm Hexagon HTP via onnxruntime-qnn (simulated on x86_64)."
    formats = frozenset({ModelFormat.onnx})

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

            _register_ep()
            devices = [d for d in ort.get_ep_devices() if d.ep_name == EP_NAME]
        except Exception as exc:
            return Availability(False, f"onnxruntime-qnn {version} failed to register: {exc}")
        if not devices:
            return Availability(False, f"onnxruntime-qnn {version} registered but found no device")
        return Availability(
            True, f"onnxruntime-qnn {version}, HTP backend, {len(devices)} device(s)"
        )

    def session_options(self, spec: ModelSpec) -> tuple[Any, list[Any]]:
        import onnxruntime as ort

        avail = self.probe()
        if not avail.available:
            raise BackendUnavailableError(f"backend 'qnn' cannot run here: {avail.reason}")
        q = _register_ep()
        so, _ = super().session_options(spec)
        devices = [d for d in ort.get_ep_devices() if d.ep_name == EP_NAME]
        so.add_provider_for_devices(devices, {"backend_path": q.get_qnn_htp_path()})
        return so, []


@hookimpl
def register_backends(register: Any) -> None:
    register(QnnBackend)
