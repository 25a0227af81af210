"""Providers that read the device's state from the kernel: memory, thermal zones, battery.

Each reads under a root folder (default "/"), so tests point it at a fake tree. A file that is
missing or unreadable means "unknown" (no key, or None), never an exception for the caller.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

# Readings outside this range are a broken or disabled sensor (e.g. -273000 or 2^31 m°C).
PLAUSIBLE_C = (-40.0, 150.0)


class Provider(Protocol):
    """Something that reports part of the device state (keys of ``aios.device.state.READINGS``)."""

    name: str

    def read(self) -> dict[str, Any]: ...


def _read(path: str | Path, limit: int = 4096) -> str | None:
    # os.read, not open(): a sysfs attribute read this way costs ~2 µs instead of ~12 µs, and a
    # refresh reads one file per thermal zone (phones have dozens).
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            data = os.read(fd, limit)
        finally:
            os.close(fd)
    except OSError:  # missing, EIO/EINVAL/ENODATA from a driver, permissions, a directory
        return None
    return data.decode("ascii", errors="replace").strip()


def parse_meminfo(text: str) -> dict[str, int]:
    """``/proc/meminfo`` as {field: kB}; lines that do not parse are skipped."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[key.strip()] = int(parts[0])
    return out


class MemoryProvider:
    """MemAvailable from ``/proc/meminfo``, in MiB (what the memory governor budgets against)."""

    name = "memory"

    def __init__(self, root: str | os.PathLike[str] = "/") -> None:
        self.path = Path(root) / "proc" / "meminfo"

    def available_mb(self) -> float | None:
        text = _read(self.path, 65536)
        if text is None:
            return None
        start = text.find("MemAvailable:")  # one field: no need to parse all fifty lines
        if start < 0:
            return None
        end = text.find("\n", start)
        kb = parse_meminfo(text[start:] if end < 0 else text[start:end]).get("MemAvailable")
        return kb / 1024 if kb is not None else None

    def read(self) -> dict[str, Any]:
        return {"mem_available_mb": self.available_mb()}


class ThermalProvider:
    """The hottest of the thermal zones (``/sys/class/thermal/thermal_zone*/temp``, m°C).

    ``zones`` are shell patterns on the zone's ``type`` (empty: every zone). Zones and their
    types are listed once; a zone that fails to read or reads implausibly is skipped.
    """

    name = "thermal"

    def __init__(self, root: str | os.PathLike[str] = "/", zones: Sequence[str] = ()) -> None:
        self.base = Path(root) / "sys" / "class" / "thermal"
        self.patterns = tuple(zones)
        self._zones: list[tuple[str, str]] | None = None

    def zones(self) -> list[tuple[str, str]]:
        """(temp file, zone type) of each zone read, listed on first use."""
        if self._zones is None:
            found = []
            for d in sorted(self.base.glob("thermal_zone*")):
                kind = _read(d / "type") or d.name
                if not self.patterns or any(fnmatch.fnmatch(kind, p) for p in self.patterns):
                    found.append((str(d / "temp"), kind))
            self._zones = found
        return self._zones

    def read(self) -> dict[str, Any]:
        best: tuple[float, str] | None = None
        for path, kind in self.zones():
            raw = _read(path)
            try:
                temp = int(raw) / 1000 if raw is not None else None
            except ValueError:
                temp = None
            if temp is None or not PLAUSIBLE_C[0] <= temp <= PLAUSIBLE_C[1]:
                continue
            if best is None or temp > best[0]:
                best = (temp, kind)
        if best is None:
            return {"temp_c": None, "thermal_zone": None}
        return {"temp_c": best[0], "thermal_zone": best[1]}


class BatteryProvider:
    """Charge and power source from ``/sys/class/power_supply/*`` (``type``, ``capacity``,
    ``status``, ``online``).

    The first supply of type Battery that powers the system (not a peripheral's, ``scope`` =
    Device) gives the charge. ``charging`` means plugged in: status Charging or Full is true,
    Discharging false; otherwise (Not charging, Unknown) any online Mains/USB/Wireless supply
    decides. No supplies at all: everything unknown.
    """

    name = "battery"

    def __init__(self, root: str | os.PathLike[str] = "/") -> None:
        self.base = Path(root) / "sys" / "class" / "power_supply"
        self._supplies: list[tuple[Path, str | None, str | None]] | None = None

    def supplies(self) -> list[tuple[Path, str | None, str | None]]:
        """(folder, type, scope) of each supply, listed on first use."""
        if self._supplies is None:
            self._supplies = [
                (d, _read(d / "type"), _read(d / "scope")) for d in sorted(self.base.glob("*"))
            ]
        return self._supplies

    def read(self) -> dict[str, Any]:
        pct: float | None = None
        status: str | None = None
        external: bool | None = None
        for d, kind, scope in self.supplies():
            if kind == "Battery":
                if pct is not None or scope == "Device":
                    continue
                raw = _read(d / "capacity")
                try:
                    value = float(raw) if raw is not None else None
                except ValueError:
                    value = None
                if value is not None and 0 <= value <= 100:
                    pct, status = value, _read(d / "status")
            elif kind is not None:  # Mains, USB, USB_PD, Wireless, ...
                online = _read(d / "online")
                if online in ("0", "1"):
                    external = bool(external) or online == "1"
        charging: bool | None
        if status in ("Charging", "Full"):
            charging = True
        elif status == "Discharging":
            charging = False
        else:
            charging = external
        return {"battery_pct": pct, "charging": charging}


def sysfs_providers(root: str | os.PathLike[str] = "/", zones: Sequence[str] = ()) -> list[Any]:
    """The kernel-backed providers, reading under ``root``."""
    return [MemoryProvider(root), ThermalProvider(root, zones), BatteryProvider(root)]
