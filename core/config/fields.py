"""Building blocks shared by every section of the OEM config: names, the strict base
model (unknown keys are errors, values are frozen) and the vendor and format enums."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
Name = Annotated[str, Field(pattern=NAME_PATTERN, description="Lower-case identifier.")]
ENV_NAME_PATTERN = r"^[A-Z_][A-Z0-9_]{0,127}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SocVendor(StrEnum):
    qualcomm = "qualcomm"
    mediatek = "mediatek"
    samsung = "samsung"
    google = "google"
    unisoc = "unisoc"
    hisilicon = "hisilicon"
    generic = "generic"


class NpuKind(StrEnum):
    none = "none"
    hexagon = "hexagon"  # Qualcomm Hexagon HTP, reached through QNN
    mediatek_apu = "mediatek-apu"  # MediaTek APU, reached through NeuroPilot / LiteRT
    other = "other"


class ModelFormat(StrEnum):
    gguf = "gguf"
    onnx = "onnx"
    tflite = "tflite"
    api = "api"  # served by a cloud endpoint; no file on the device
