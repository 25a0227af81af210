"""The OEM config: one pydantic root model, every field described and bounded.

The JSON Schema printed by ``aios config schema`` is generated from these classes, so the
descriptions here are the config author's documentation. Each section lives in a module named
for what it configures (``device_schema``, ``model_schema``, ``routing_schema``,
``service_schema``, ``backend_schema``; shared building blocks in ``fields``); every name is
re-exported here, where the rest of aios and plugins import them from.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from aios.config.backend_schema import (
    BackendOptions,
    DimName,
    DimValue,
    HtpPerformanceMode,
    QnnSettings,
)
from aios.config.device_schema import (
    DevicePolicy,
    DeviceProfile,
    DeviceSettings,
    OEMInfo,
    SchedulingSettings,
    ZonePattern,
)
from aios.config.fields import (
    ENV_NAME_PATTERN,
    NAME_PATTERN,
    ModelFormat,
    Name,
    NpuKind,
    SocVendor,
    Strict,
)
from aios.config.model_schema import (
    ModelSource,
    ModelSpec,
    PromptFormat,
    PromptStyle,
)
from aios.config.routing_schema import (
    CloudConfig,
    CloudEndpoint,
    RoutingMode,
    RoutingPolicy,
)
from aios.config.service_schema import (
    SKILL_PATTERN,
    TOKEN_SHA256_PATTERN,
    AppSpec,
    DeliverySettings,
    IndexSettings,
    PluginSettings,
    ServiceSettings,
    SkillSettings,
    StorageSettings,
)

__all__ = [
    "AppSpec",
    "BackendOptions",
    "CloudConfig",
    "CloudEndpoint",
    "DeliverySettings",
    "DevicePolicy",
    "DeviceProfile",
    "DeviceSettings",
    "DimName",
    "DimValue",
    "ENV_NAME_PATTERN",
    "HtpPerformanceMode",
    "IndexSettings",
    "ModelFormat",
    "ModelSource",
    "ModelSpec",
    "NAME_PATTERN",
    "Name",
    "NpuKind",
    "OEMConfig",
    "OEMInfo",
    "PluginSettings",
    "PromptFormat",
    "PromptStyle",
    "QnnSettings",
    "RoutingMode",
    "RoutingPolicy",
    "SKILL_PATTERN",
    "SchedulingSettings",
    "ServiceSettings",
    "SkillSettings",
    "SocVendor",
    "StorageSettings",
    "Strict",
    "TOKEN_SHA256_PATTERN",
    "ZonePattern",
]


class OEMConfig(Strict):
    """Root of an OEM config file."""

    schema_version: Literal[1] = Field(description="Config format version; currently 1.")
    oem: OEMInfo = Field(description="Who ships this config.")
    device: DeviceSettings = Field(description="Which profile this device runs as.")
    profiles: list[DeviceProfile] = Field(
        min_length=1, max_length=64, description="Device profiles this config covers."
    )
    models: list[ModelSpec] = Field(min_length=1, max_length=256, description="The model matrix.")
    prompt_formats: dict[Name, PromptFormat] = Field(
        default_factory=dict,
        max_length=64,
        description="Prompt formats by name, per model family.",
    )
    cloud: CloudConfig = Field(default_factory=CloudConfig, description="Cloud tier endpoints.")
    routing: RoutingPolicy = Field(
        default_factory=RoutingPolicy, description="Device/cloud routing and privacy policy."
    )
    skills: dict[Name, SkillSettings] = Field(
        default_factory=dict,
        max_length=256,
        description="Per-skill settings and overrides, by skill name.",
    )
    plugins: PluginSettings = Field(
        default_factory=PluginSettings, description="Which third-party plugins load."
    )
    storage: StorageSettings = Field(
        default_factory=StorageSettings, description="Where aios keeps files."
    )
    index: IndexSettings = Field(
        default_factory=IndexSettings, description="The on-device search index."
    )
    delivery: DeliverySettings = Field(
        default_factory=DeliverySettings,
        description="Downloading models from the OEM model server (`source.url`).",
    )
    scheduling: SchedulingSettings = Field(
        default_factory=SchedulingSettings,
        description="How calls queue for loaded models (foreground before background).",
    )
    backend_options: BackendOptions = Field(
        default_factory=BackendOptions, description="Runtime options per backend, by name."
    )
    device_policy: DevicePolicy = Field(
        default_factory=DevicePolicy,
        description="How temperature, battery and network steer routing and power mode.",
    )
    service: ServiceSettings = Field(
        default_factory=ServiceSettings, description="The system service `aios serve`."
    )
    apps: list[AppSpec] = Field(
        default_factory=list,
        max_length=1024,
        description="Apps allowed to call the service, with their permissions and quotas.",
    )

    def profile(self, name: str | None = None) -> DeviceProfile:
        wanted = name or self.device.profile
        for p in self.profiles:
            if p.name == wanted:
                return p
        raise KeyError(wanted)

    def model(self, model_id: str) -> ModelSpec:
        for m in self.models:
            if m.id == model_id:
                return m
        raise KeyError(model_id)
