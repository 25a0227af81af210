"""Backend-specific config sections (Qualcomm QNN / HTP)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, model_validator

from aios.config.fields import (
    Strict,
)


class HtpPerformanceMode(StrEnum):
    """QNN HTP power/performance votes, as onnxruntime's QNN execution provider names them."""

    burst = "burst"
    sustained_high_performance = "sustained_high_performance"
    high_performance = "high_performance"
    balanced = "balanced"
    low_balanced = "low_balanced"
    high_power_saver = "high_power_saver"
    power_saver = "power_saver"
    low_power_saver = "low_power_saver"
    extreme_power_saver = "extreme_power_saver"
    default = "default"


DimName = Annotated[str, Field(min_length=1, max_length=128)]
DimValue = Annotated[int, Field(ge=1, le=65_536)]


class QnnSettings(Strict):
    """Session options of the `qnn` backend (onnxruntime-qnn)."""

    backend: Literal["htp", "gpu", "cpu"] = Field(
        default="htp",
        description=(
            "QNN backend library: `htp` (Hexagon NPU; the x86_64 wheel runs it as a simulator), "
            "`gpu` (Adreno), `cpu` (QNN's reference CPU backend, not in the PyPI wheel)."
        ),
    )
    htp_performance_mode: HtpPerformanceMode = Field(
        default=HtpPerformanceMode.balanced,
        description=(
            "HTP performance mode of a session; a call runs with the mode mapped from the "
            "model's power_mode (performance: burst, balanced, power_saver) when one is set."
        ),
    )
    soc_model: int | None = Field(
        default=None,
        ge=0,
        le=9999,
        description=(
            "SoC id from QNN's SoC table (e.g. 57 for SM8650, 43 for SM8550), not the marketing "
            "name; required by `fp16`. An id QNN does not know fails every load."
        ),
    )
    fp16: bool = Field(
        default=False,
        description="Run float32 models at fp16 precision on the HTP; needs `soc_model`.",
    )
    graph_optimization: int | None = Field(
        default=None,
        ge=0,
        le=3,
        description=(
            "HTP graph finalization optimization mode, 0-3: higher compiles longer for a faster "
            "graph (default: QNN's own)."
        ),
    )
    context_cache: bool = Field(
        default=True,
        description=(
            "Keep each compiled QNN context (an EP context model) on disk so later loads skip "
            "compilation."
        ),
    )
    cache_dir: str | None = Field(
        default=None,
        max_length=4096,
        pattern=r"^[~/]",
        description="Folder for compiled contexts (default: $AIOS_HOME/qnn); absolute or ~/...",
    )
    static_shapes: dict[DimName, DimValue] = Field(
        default_factory=dict,
        max_length=64,
        description=(
            "Values for named dynamic input dimensions, e.g. {batch = 1, sequence = 128}: the "
            "HTP needs static shapes, so QNN leaves nodes with dynamic shapes to the CPU."
        ),
    )
    dynamic_dim_default: DimValue | None = Field(
        default=1,
        description=(
            "Value for any named dynamic dimension not in `static_shapes` (batch-like dims); "
            "null leaves them dynamic."
        ),
    )
    cpu_fallback: bool = Field(
        default=True,
        description=(
            "Run nodes QNN cannot take on the CPU; false fails such a load instead. A load where "
            "QNN takes no node at all always fails."
        ),
    )

    @model_validator(mode="after")
    def _fp16_needs_soc(self) -> QnnSettings:
        if self.fp16 and self.soc_model is None:
            raise ValueError("`fp16` needs `soc_model` (QNN refuses fp16 precision without it)")
        return self


class BackendOptions(Strict):
    qnn: QnnSettings = Field(
        default_factory=QnnSettings, description="Qualcomm NPU backend `qnn` (onnxruntime-qnn)."
    )
