"""Config sections about the phone itself: the OEM, device profiles, which profile this
build runs on, the thermal and battery policy, and the background scheduler."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from aios.config.fields import (
    Name,
    NpuKind,
    SocVendor,
    Strict,
)


class OEMInfo(Strict):
    id: Name = Field(description="Short identifier of the phone maker, e.g. 'acme'.")
    name: str = Field(min_length=1, max_length=120, description="Display name of the OEM.")
    contact: str | None = Field(
        default=None, max_length=200, description="Where integrators report problems."
    )


class DeviceProfile(Strict):
    name: Name = Field(description="Profile name that models and `device.profile` refer to.")
    ram_mb: int = Field(ge=1024, le=262_144, description="Physical RAM of the device in MiB.")
    soc_vendor: SocVendor = Field(description="SoC vendor.")
    soc_model: str = Field(
        min_length=1, max_length=64, description="SoC model, e.g. 'SM8650' or 'Dimensity 7300'."
    )
    npu: NpuKind = Field(default=NpuKind.none, description="Kind of NPU on the SoC.")
    os_reserve_mb: int = Field(
        default=4096,
        ge=0,
        le=65_536,
        description="Memory the OS itself needs (Android ≈ 4 GB); never given to models.",
    )
    keepalive_reserve_mb: int = Field(
        default=6144,
        ge=0,
        le=65_536,
        description=(
            "Memory kept for keep-alive apps (≈ 6 GB on a 16 GB phone); never given to models."
        ),
    )
    min_free_mb: int = Field(
        default=256,
        ge=0,
        le=65_536,
        description=(
            "Free memory (MemAvailable) the system always keeps: below it, aios unloads idle "
            "models (least recently used first) to give memory back, as apps must on Android's "
            "onTrimMemory."
        ),
    )
    backends: list[Name] = Field(
        min_length=1,
        max_length=16,
        description=(
            "Backends enabled on this device, most preferred first. A model runs on the first "
            "backend of its own list that is also enabled here and available."
        ),
    )

    @property
    def model_budget_mb(self) -> int:
        return self.ram_mb - self.os_reserve_mb - self.keepalive_reserve_mb

    @model_validator(mode="after")
    def _budget_positive(self) -> DeviceProfile:
        if self.model_budget_mb <= 0:
            raise ValueError(
                f"ram_mb ({self.ram_mb}) minus os_reserve_mb ({self.os_reserve_mb}) minus "
                f"keepalive_reserve_mb ({self.keepalive_reserve_mb}) leaves no memory for models"
            )
        if len(set(self.backends)) != len(self.backends):
            raise ValueError("backends lists a backend twice")
        return self


class DeviceSettings(Strict):
    profile: Name = Field(description="The device profile this device runs as.")


ZonePattern = Annotated[str, Field(min_length=1, max_length=64)]


class DevicePolicy(Strict):
    """How live device state (temperature, battery, network) steers routing and power mode.

    Temperatures are the hottest of the thermal zones read (all zones unless `thermal_zones`
    picks some), so the defaults are on the SoC scale; a config that reads a skin sensor
    should lower them (about 41 and 45 °C).
    """

    enabled: bool = Field(
        default=True,
        description=(
            "Let temperature, battery and network steer routing and power mode. Memory is "
            "read for the memory governor either way."
        ),
    )
    hot_c: float = Field(
        default=80.0,
        ge=20,
        le=150,
        description="At or above this temperature (°C): smaller device models first, power saver.",
    )
    critical_c: float = Field(
        default=95.0,
        ge=20,
        le=150,
        description=(
            "At or above this temperature (°C): the cloud first when privacy and the user's "
            "choice allow, else the smallest device model; power saver."
        ),
    )
    low_battery_pct: float = Field(
        default=20.0,
        ge=0,
        le=100,
        description="Below this charge (%) and not plugged in: smaller models first, power saver.",
    )
    critical_battery_pct: float = Field(
        default=10.0,
        ge=0,
        le=100,
        description=(
            "Below this charge (%) and not plugged in: the cloud first when privacy and the "
            "user's choice allow, else smaller models; power saver."
        ),
    )
    thermal_zones: list[ZonePattern] = Field(
        default_factory=list,
        max_length=32,
        description=(
            "Thermal zone types to read, as shell patterns (e.g. ['cpu*', 'skin-therm']); "
            "empty reads every zone."
        ),
    )
    cache_s: float = Field(
        default=1.0,
        ge=0,
        le=60,
        description="How long one device-state snapshot is reused before sensors are read again.",
    )
    probe_network: bool = Field(
        default=True,
        description=(
            "Check that the cloud endpoints' hosts are reachable (a TCP connect, in the "
            "background); when none is, requests stay on the device as if offline."
        ),
    )
    network_timeout_s: float = Field(
        default=0.5, gt=0, le=10, description="Connect deadline of one reachability check."
    )
    network_cache_s: float = Field(
        default=5.0, ge=0.5, le=300, description="How long a reachability result is reused."
    )

    @model_validator(mode="after")
    def _ordered(self) -> DevicePolicy:
        if self.critical_c <= self.hot_c:
            raise ValueError(f"critical_c ({self.critical_c}) must be above hot_c ({self.hot_c})")
        if self.critical_battery_pct > self.low_battery_pct:
            raise ValueError(
                f"critical_battery_pct ({self.critical_battery_pct}) must not be above "
                f"low_battery_pct ({self.low_battery_pct})"
            )
        return self


class SchedulingSettings(Strict):
    queue_timeout_s: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="Longest a call waits in a model's queue before failing (queue_timeout).",
    )
    background_aging_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description=(
            "A background call that has waited this long is served as if it were foreground, "
            "so background work is never starved."
        ),
    )
