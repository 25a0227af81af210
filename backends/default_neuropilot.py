"""MediaTek NeuroPilot through LiteRT's MediaTek NPU accelerator.

The NeuroPilot runtime ships in a MediaTek device's vendor image, not on PyPI, so off-device
this backend reports exactly what is missing and requests fall back along the configured
backend order. It never pretends to execute.
"""

from __future__ import annotations

import ctypes.util
import os
from pathlib import Path
from typing import Any

from aios.backend import Availability, Backend, LoadedModel
from aios.backends.default_onnxruntime import package_version
from aios.config.schema import ModelFormat, ModelSpec
from aios.errors import BackendUnavailableError
from aios.hookspecs import hookimpl

# Libraries a MediaTek device's vendor partition provides for the LiteRT NPU accelerator.
NEURON_LIBRARIES = ("neuron_adapter", "neuronusdk_adapter.mtk", "apuwareutils")


def find_neuron_runtime() -> str | None:
    search = os.environ.get("AIOS_NEURON_LIB_DIR")
    for lib in NEURON_LIBRARIES:
        if search:
            for cand in Path(search).glob(f"lib{lib}*.so*"):
                return str(cand)
        found = ctypes.util.find_library(lib)
        if found:
            return found
    return None


class NeuroPilotBackend(Backend):
    name = "neuropilot"
    description = "MediaTek NPU via LiteRT (ai-edge-litert) with the NeuroPilot runtime."
    formats = frozenset({ModelFormat.tflite})

    def probe(self) -> Availability:
        litert = package_version("ai-edge-litert")
        runtime = find_neuron_runtime()
        if litert is None:
            return Availability(
                False,
                "LiteRT is not installed (pip install ai-edge-litert) and no MediaTek NeuroPilot "
                "runtime (libneuron_adapter.so) was found",
            )
        if runtime is None:
            return Availability(
                False,
                f"ai-edge-litert {litert} is installed, but the MediaTek NeuroPilot runtime "
                "(libneuron_adapter.so from the device's vendor image) was not found; set "
                "AIOS_NEURON_LIB_DIR to its folder on a MediaTek device",
            )
        return Availability(
            False,
            f"NeuroPilot runtime found at {runtime}, but model execution through it is not "
            "implemented in this release",
        )

    def load(self, spec: ModelSpec, path: Path) -> LoadedModel:
        raise BackendUnavailableError(
            f"backend 'neuropilot' cannot run here: {self.probe().reason}"
        )


@hookimpl
def register_backends(register: Any) -> None:
    register(NeuroPilotBackend)
