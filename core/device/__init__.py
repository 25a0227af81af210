"""Device state: memory, temperature, battery and network, and what the OEM policy makes of it.

``DeviceMonitor`` reads the providers (kernel files under a root folder, network reachability,
or a replayed trace) into a cached ``DeviceState`` whose ``power_mode`` backends run in and
whose conditions the routing policy and model selection act on.
"""

from aios.device.monitor import DeviceMonitor
from aios.device.network import NetworkProvider, check_host, cloud_hosts
from aios.device.providers import (
    BatteryProvider,
    MemoryProvider,
    Provider,
    ThermalProvider,
    parse_meminfo,
    sysfs_providers,
)
from aios.device.state import READINGS, DeviceState, PowerMode, assess
from aios.device.trace import SimulatedProvider, Trace, TraceError, load_trace

__all__ = [
    "READINGS",
    "BatteryProvider",
    "DeviceMonitor",
    "DeviceState",
    "MemoryProvider",
    "NetworkProvider",
    "PowerMode",
    "Provider",
    "SimulatedProvider",
    "ThermalProvider",
    "Trace",
    "TraceError",
    "assess",
    "check_host",
    "cloud_hosts",
    "load_trace",
    "parse_meminfo",
    "sysfs_providers",
]
