"""The device monitor: providers created once, one cached ``DeviceState`` snapshot per second.

A request asks ``snapshot()``: within ``cache_s`` of the last read that is a clock call and a
comparison; after it, the providers are read again (a few sysfs files). A provider that raises
is logged (once per distinct error) and its readings count as unknown.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import structlog

from aios.config.schema import DevicePolicy, OEMConfig
from aios.device.network import NetworkProvider, cloud_hosts, forced_offline
from aios.device.providers import MemoryProvider, Provider, sysfs_providers
from aios.device.state import READINGS, DeviceState, assess

log = structlog.get_logger("aios.device")


class DeviceMonitor:
    def __init__(
        self,
        policy: DevicePolicy | None = None,
        providers: Sequence[Provider] = (),
        *,
        cache_s: float | None = None,
        source: str = "sysfs",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy or DevicePolicy()
        self.providers = list(providers)
        self.cache_s = self.policy.cache_s if cache_s is None else cache_s
        self.source = source
        self._clock = clock
        self._lock = threading.Lock()
        self._state: DeviceState | None = None
        self._taken = 0.0
        self._errors: dict[str, str] = {}

    @classmethod
    def from_config(cls, cfg: OEMConfig, root: str | Path = "/") -> DeviceMonitor:
        """Kernel providers under ``root``, plus network reachability of the cloud endpoints."""
        policy = cfg.device_policy
        if not policy.enabled:
            return cls(policy, [MemoryProvider(root)])
        providers: list[Any] = sysfs_providers(root, policy.thermal_zones)
        hosts = cloud_hosts(cfg)
        if policy.probe_network and hosts:
            providers.append(
                NetworkProvider(
                    hosts, timeout_s=policy.network_timeout_s, cache_s=policy.network_cache_s
                )
            )
        return cls(policy, providers)

    def snapshot(self) -> DeviceState:
        """The current state, read at most once per ``cache_s``."""
        state = self._state
        if state is not None and self._clock() - self._taken < self.cache_s:
            return state
        return self.refresh()

    def refresh(self) -> DeviceState:
        """Read every provider now."""
        with self._lock:
            readings: dict[str, Any] = {}
            for provider in self.providers:
                readings.update(self._read(provider))
            if forced_offline():
                readings.update(online=False, network="forced offline by AIOS_OFFLINE")
            state = assess(self.policy, self.source, **readings)
            self._state, self._taken = state, self._clock()
        return state

    def mem_available_mb(self) -> float | None:
        """MemAvailable from the last snapshot: the memory governor's live source."""
        return self.snapshot().mem_available_mb

    def _read(self, provider: Provider) -> dict[str, Any]:
        name = getattr(provider, "name", type(provider).__name__)
        try:
            got = provider.read()
        except Exception as exc:  # a broken sensor must not fail requests
            error = f"{type(exc).__name__}: {exc}"
            if self._errors.get(name) != error:
                self._errors[name] = error
                log.warning("device.provider_failed", provider=name, error=error)
            return {}
        if name in self._errors:
            del self._errors[name]
            log.info("device.provider_recovered", provider=name)
        return {k: v for k, v in got.items() if k in READINGS}
