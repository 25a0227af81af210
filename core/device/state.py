"""One snapshot of the device's state and what the OEM's device policy makes of it.

``assess`` is a pure function of the readings and ``[device_policy]``: the same readings always
give the same power mode, conditions and reasons, so a trace replays exactly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from aios.config.schema import DevicePolicy

PowerMode = Literal["performance", "balanced", "power_saver"]
Condition = Literal["critical-temperature", "hot", "critical-battery", "low-battery", "plugged-in"]

# What providers may report; anything else they return is ignored.
READINGS = (
    "mem_available_mb",
    "temp_c",
    "thermal_zone",
    "battery_pct",
    "charging",
    "online",
    "network",
)
_CLOUD_FIRST = frozenset({"critical-temperature", "critical-battery"})
_SMALLER_FIRST = _CLOUD_FIRST | {"hot", "low-battery"}


@dataclass(frozen=True)
class DeviceState:
    """What the device knows about itself now; None means unknown. Build it with ``assess``."""

    mem_available_mb: float | None = None  # MemAvailable, MiB
    temp_c: float | None = None  # hottest thermal zone read, °C
    thermal_zone: str | None = None  # type of that zone
    battery_pct: float | None = None  # 0..100
    charging: bool | None = None  # plugged in (charging or full)
    online: bool | None = None  # a cloud endpoint's host is reachable
    network: str | None = None  # what the reachability check found
    power_mode: PowerMode = "balanced"  # the mode backends should run in (TensorModel.power_mode)
    conditions: tuple[Condition, ...] = ()
    reasons: tuple[str, ...] = ()  # one line per condition, for the execution record
    source: str = "none"  # "sysfs", "trace commute.jsonl t=30s", ...

    @property
    def prefer_cloud(self) -> bool:
        """Critical temperature or battery: the cloud first, where privacy and the user allow."""
        return any(c in _CLOUD_FIRST for c in self.conditions)

    @property
    def prefer_smaller(self) -> bool:
        """Hot or low on battery: the smallest device models first."""
        return any(c in _SMALLER_FIRST for c in self.conditions)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["conditions"] = list(self.conditions)
        data["reasons"] = list(self.reasons)
        return data


def assess(policy: DevicePolicy, source: str = "none", **readings: Any) -> DeviceState:
    """The ``DeviceState`` for these readings (keys of ``READINGS``; missing ones are unknown).

    Temperature: at or above ``critical_c`` is critical, at or above ``hot_c`` hot. Battery
    thresholds apply only when the device is not known to be plugged in. Power saver when any
    condition holds; performance when plugged in and none does; balanced otherwise.
    """
    unknown = set(readings) - set(READINGS)
    if unknown:
        raise TypeError(f"unknown device reading(s): {', '.join(sorted(unknown))}")
    temp = readings.get("temp_c")
    zone = readings.get("thermal_zone")
    pct = readings.get("battery_pct")
    charging = readings.get("charging")
    conditions: list[Condition] = []
    reasons: list[str] = []
    if policy.enabled and temp is not None:
        where = f" ({zone})" if zone else ""
        if temp >= policy.critical_c:
            conditions.append("critical-temperature")
            reasons.append(
                f"critical temperature {temp:.1f} °C{where} >= {policy.critical_c:g} °C: the cloud "
                "first when allowed, else the smallest device model; power saver"
            )
        elif temp >= policy.hot_c:
            conditions.append("hot")
            reasons.append(
                f"hot {temp:.1f} °C{where} >= {policy.hot_c:g} °C: smaller models first; "
                "power saver"
            )
    if policy.enabled and pct is not None and charging is not True:
        unplugged = "not plugged in" if charging is False else "power source unknown"
        if pct < policy.critical_battery_pct:
            conditions.append("critical-battery")
            reasons.append(
                f"critical battery {pct:g}% < {policy.critical_battery_pct:g}% ({unplugged}): "
                "the cloud first when allowed, else smaller models; power saver"
            )
        elif pct < policy.low_battery_pct:
            conditions.append("low-battery")
            reasons.append(
                f"low battery {pct:g}% < {policy.low_battery_pct:g}% ({unplugged}): smaller "
                "models first; power saver"
            )
    mode: PowerMode = "balanced"
    if conditions:
        mode = "power_saver"
    elif policy.enabled and charging is True:
        mode = "performance"
        conditions.append("plugged-in")
        cool = f", {temp:.1f} °C < {policy.hot_c:g} °C" if temp is not None else ""
        reasons.append(f"plugged in{cool}: performance")
    return DeviceState(
        **{k: readings.get(k) for k in READINGS},
        power_mode=mode,
        conditions=tuple(conditions),
        reasons=tuple(reasons),
        source=source,
    )
