"""Device state: kernel providers on fake sysfs trees, traces, reachability on real sockets,
the policy's thresholds and their precedence, smaller-model preference, and `aios simulate`."""

from __future__ import annotations

import json
import socket
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from aios import Orchestrator
from aios.config import load_config
from aios.config.schema import DevicePolicy, RoutingMode
from aios.device import (
    BatteryProvider,
    DeviceMonitor,
    DeviceState,
    MemoryProvider,
    NetworkProvider,
    SimulatedProvider,
    ThermalProvider,
    TraceError,
    assess,
    check_host,
    cloud_hosts,
    load_trace,
    parse_meminfo,
)
from aios.plugins.default_generate import Generate
from aios.routing.policy import RequestOptions, RouteState, decide
from aios.types import DataClass, Tier

from .conftest import REPO, SCRIPTED_CONFIG, run_cli
from .doubles import ScriptedBackend, ScriptedPlugin

POLICY = DevicePolicy()  # hot 80, critical 95 °C; low 20, critical 10 %


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="ascii")


# -- memory -------------------------------------------------------------------------------
MEMINFO = """\
MemTotal:       16084052 kB
MemFree:          512000 kB
MemAvailable:    6291456 kB
Buffers:          104000 kB
HugePages_Total:       0
"""


def test_meminfo_is_parsed_and_available_is_in_mib(tmp_path: Path) -> None:
    assert parse_meminfo(MEMINFO)["MemAvailable"] == 6291456
    assert parse_meminfo(MEMINFO)["HugePages_Total"] == 0
    assert parse_meminfo("garbage\nMemAvailable: lots kB\n") == {}
    write(tmp_path, "proc/meminfo", MEMINFO)
    assert MemoryProvider(tmp_path).read() == {"mem_available_mb": 6144.0}


def test_meminfo_missing_or_without_memavailable_is_unknown(tmp_path: Path) -> None:
    assert MemoryProvider(tmp_path).read() == {"mem_available_mb": None}
    write(tmp_path, "proc/meminfo", "MemTotal: 1000 kB\n")
    assert MemoryProvider(tmp_path).read() == {"mem_available_mb": None}


# -- thermal ------------------------------------------------------------------------------
def thermal_tree(root: Path) -> None:
    zones = {
        0: ("cpu-0-0", "47500"),
        1: ("gpuss-0", "52100"),
        2: ("battery", "31000"),
        3: ("skin-therm", "39800"),
        4: ("pm8550-tz", "-273000"),  # a disabled sensor's sentinel
        5: ("tsens-broken", "not a number"),
    }
    for n, (kind, temp) in zones.items():
        write(root, f"sys/class/thermal/thermal_zone{n}/type", kind + "\n")
        write(root, f"sys/class/thermal/thermal_zone{n}/temp", temp + "\n")
    # a zone whose temp cannot be read at all (the driver returns EIO; here: not a file)
    write(root, "sys/class/thermal/thermal_zone6/type", "adc-broken\n")
    (root / "sys/class/thermal/thermal_zone6/temp").mkdir()
    # a zone with no type file and no temp file
    (root / "sys/class/thermal/thermal_zone7").mkdir()
    # cooling devices live beside zones and are not zones
    write(root, "sys/class/thermal/cooling_device0/type", "thermal-cpufreq-0\n")


def test_hottest_plausible_zone_wins_and_broken_zones_are_skipped(tmp_path: Path) -> None:
    thermal_tree(tmp_path)
    assert ThermalProvider(tmp_path).read() == {"temp_c": 52.1, "thermal_zone": "gpuss-0"}


def test_zone_patterns_pick_the_sensors_that_count(tmp_path: Path) -> None:
    thermal_tree(tmp_path)
    skin = ThermalProvider(tmp_path, zones=["skin-*", "xo-therm"])
    assert skin.read() == {"temp_c": 39.8, "thermal_zone": "skin-therm"}
    assert ThermalProvider(tmp_path, zones=["cpu*"]).read()["temp_c"] == 47.5
    assert ThermalProvider(tmp_path, zones=["modem*"]).read() == {
        "temp_c": None,
        "thermal_zone": None,
    }


def test_no_thermal_zones_is_unknown(tmp_path: Path) -> None:
    assert ThermalProvider(tmp_path).read() == {"temp_c": None, "thermal_zone": None}
    thermal_tree(tmp_path)
    provider = ThermalProvider(tmp_path)
    provider.read()
    for temp in (tmp_path / "sys/class/thermal").glob("thermal_zone[0-5]/temp"):
        temp.unlink()  # zones vanish after they were listed
    assert provider.read() == {"temp_c": None, "thermal_zone": None}


# -- battery ------------------------------------------------------------------------------
def supply(root: Path, name: str, **files: str) -> None:
    for key, value in files.items():
        write(root, f"sys/class/power_supply/{name}/{key}", value + "\n")


@pytest.mark.parametrize(
    ("status", "usb_online", "charging"),
    [
        ("Charging", "1", True),
        ("Full", "1", True),
        ("Discharging", "0", False),
        ("Discharging", "1", False),  # the battery's own word wins
        ("Not charging", "1", True),  # plugged in, charge paused (limit or temperature)
        ("Not charging", "0", False),
        ("Unknown", None, None),
    ],
)
def test_battery_charge_and_power_source(
    tmp_path: Path, status: str, usb_online: str | None, charging: bool | None
) -> None:
    supply(tmp_path, "battery", type="Battery", capacity="57", status=status)
    if usb_online is not None:
        supply(tmp_path, "usb", type="USB", online=usb_online)
    assert BatteryProvider(tmp_path).read() == {"battery_pct": 57.0, "charging": charging}


def test_no_battery_is_unknown_and_peripherals_do_not_count(tmp_path: Path) -> None:
    assert BatteryProvider(tmp_path).read() == {"battery_pct": None, "charging": None}
    # a desktop on mains power with a Bluetooth mouse's battery
    supply(tmp_path, "AC", type="Mains", online="1")
    supply(tmp_path, "hid-mouse-battery", type="Battery", scope="Device", capacity="5")
    assert BatteryProvider(tmp_path).read() == {"battery_pct": None, "charging": True}


def test_broken_battery_files_are_unknown(tmp_path: Path) -> None:
    supply(tmp_path, "bms", type="Battery", capacity="n/a", status="Discharging")
    supply(tmp_path, "battery", type="Battery", capacity="250")  # implausible
    supply(tmp_path, "usb", type="USB")  # no online file
    assert BatteryProvider(tmp_path).read() == {"battery_pct": None, "charging": None}


# -- the monitor --------------------------------------------------------------------------
class Fixed:
    """A provider reporting fixed readings (a test double of the provider interface)."""

    name = "fixed"

    def __init__(self, **readings: Any) -> None:
        self.readings = readings
        self.reads = 0

    def read(self) -> dict[str, Any]:
        self.reads += 1
        return dict(self.readings)


class Broken:
    name = "broken"

    def read(self) -> dict[str, Any]:
        raise RuntimeError("sensor hub crashed")


def test_a_provider_that_raises_is_logged_once_and_unknown() -> None:
    fixed = Fixed(battery_pct=50.0, charging=False, bogus="ignored")
    monitor = DeviceMonitor(POLICY, [Broken(), fixed], cache_s=0)
    with capture_logs() as logs:
        first = monitor.snapshot()
        second = monitor.snapshot()
    assert first.battery_pct == 50.0 and first.temp_c is None and second == first
    failed = [e for e in logs if e["event"] == "device.provider_failed"]
    assert len(failed) == 1
    assert failed[0]["provider"] == "broken" and "sensor hub crashed" in failed[0]["error"]


def test_snapshot_is_cached_for_cache_s() -> None:
    now = [100.0]
    fixed = Fixed(temp_c=40.0)
    monitor = DeviceMonitor(POLICY, [fixed], cache_s=1.0, clock=lambda: now[0])
    first = monitor.snapshot()
    now[0] += 0.5
    assert monitor.snapshot() is first and fixed.reads == 1
    fixed.readings["temp_c"] = 85.0
    now[0] += 0.6
    assert monitor.snapshot().temp_c == 85.0 and fixed.reads == 2


def test_monitor_from_config_reads_a_fake_device(tmp_path: Path) -> None:
    write(tmp_path, "proc/meminfo", MEMINFO)
    thermal_tree(tmp_path)
    supply(tmp_path, "battery", type="Battery", capacity="15", status="Discharging")
    cfg, _ = scripted(tmp_path)
    monitor = DeviceMonitor.from_config(cfg, root=tmp_path)
    state = monitor.snapshot()
    assert (state.mem_available_mb, state.temp_c, state.thermal_zone) == (6144.0, 52.1, "gpuss-0")
    assert (state.battery_pct, state.charging) == (15.0, False)
    assert state.conditions == ("low-battery",) and state.power_mode == "power_saver"
    assert monitor.mem_available_mb() == 6144.0


def test_disabled_policy_reads_memory_only(tmp_path: Path) -> None:
    write(tmp_path, "proc/meminfo", MEMINFO)
    thermal_tree(tmp_path)
    cfg, _ = scripted(tmp_path, "[device_policy]\nenabled = false\n")
    state = DeviceMonitor.from_config(cfg, root=tmp_path).snapshot()
    assert state.mem_available_mb == 6144.0 and state.temp_c is None
    assert state.power_mode == "balanced" and state.reasons == ()


def test_snapshot_cost_is_microseconds(tmp_path: Path) -> None:
    write(tmp_path, "proc/meminfo", MEMINFO)
    thermal_tree(tmp_path)
    supply(tmp_path, "battery", type="Battery", capacity="80", status="Discharging")
    cfg, _ = scripted(tmp_path)
    monitor = DeviceMonitor.from_config(cfg, root=tmp_path)
    monitor.snapshot()
    n = 20_000
    t0 = time.perf_counter()
    for _ in range(n):
        monitor.snapshot()
    per_call_us = (time.perf_counter() - t0) / n * 1e6
    assert per_call_us < 20, per_call_us  # typically well under 1 µs


# -- the policy's assessment --------------------------------------------------------------
@pytest.mark.parametrize(
    ("readings", "conditions", "mode"),
    [
        ({}, (), "balanced"),
        ({"temp_c": 79.9, "battery_pct": 20.0, "charging": False}, (), "balanced"),
        ({"temp_c": 80.0}, ("hot",), "power_saver"),
        ({"temp_c": 94.9, "charging": True}, ("hot",), "power_saver"),
        ({"temp_c": 95.0}, ("critical-temperature",), "power_saver"),
        ({"battery_pct": 19.0, "charging": False}, ("low-battery",), "power_saver"),
        ({"battery_pct": 19.0}, ("low-battery",), "power_saver"),  # power source unknown
        ({"battery_pct": 9.5, "charging": False}, ("critical-battery",), "power_saver"),
        ({"battery_pct": 3.0, "charging": True}, ("plugged-in",), "performance"),
        ({"temp_c": 40.0, "charging": True}, ("plugged-in",), "performance"),
        (
            {"temp_c": 99.0, "battery_pct": 5.0, "charging": False},
            ("critical-temperature", "critical-battery"),
            "power_saver",
        ),
    ],
)
def test_thresholds(readings: dict[str, Any], conditions: tuple[str, ...], mode: str) -> None:
    state = assess(POLICY, **readings)
    assert state.conditions == conditions and state.power_mode == mode
    assert len(state.reasons) == len(conditions)
    critical = any(c.startswith("critical") for c in conditions)
    assert state.prefer_cloud is critical
    assert state.prefer_smaller is (bool(conditions) and conditions != ("plugged-in",))


def test_reasons_name_the_reading_and_the_threshold() -> None:
    hot = assess(POLICY, temp_c=83.5, thermal_zone="cpu-1-0")
    assert hot.reasons == ("hot 83.5 °C (cpu-1-0) >= 80 °C: smaller models first; power saver",)
    low = assess(DevicePolicy(low_battery_pct=30), battery_pct=25, charging=False)
    assert low.reasons[0].startswith("low battery 25% < 30% (not plugged in)")
    with pytest.raises(TypeError, match="unknown device reading"):
        assess(POLICY, temperature=3)


def test_device_policy_is_validated(tmp_path: Path) -> None:
    from aios import ConfigError

    with pytest.raises(ConfigError, match=r"device_policy: critical_c \(70.0\) must be above"):
        scripted(tmp_path, "[device_policy]\nhot_c = 75\ncritical_c = 70\n")
    with pytest.raises(ConfigError, match=r"device_policy.low_battery_pct: .*less than or equal"):
        scripted(tmp_path, "[device_policy]\nlow_battery_pct = 120\n")
    with pytest.raises(ConfigError, match=r"device_policy.hot: unknown key"):
        scripted(tmp_path, "[device_policy]\nhot = 75\n")


# -- routing decisions and their precedence -----------------------------------------------
def scripted(tmp_path: Path, extra: str = "", big_mb: int = 4200) -> Any:
    weights = tmp_path / "weights.gguf"
    weights.write_bytes(b"GGUF" + b"\0" * 16)
    text = textwrap.dedent(SCRIPTED_CONFIG.format(weights=weights))
    text = text.replace("memory_mb = 4200", f"memory_mb = {big_mb}")
    path = tmp_path / "oem.toml"
    path.write_text(text + extra, encoding="utf-8")
    return load_config(path)


def route(cfg: Any, state: DeviceState, opts: RequestOptions | None = None, **kw: Any) -> Any:
    return decide(cfg, Generate, opts or RequestOptions(), RouteState(device=state, **kw))


HOT = assess(POLICY, temp_c=85.0, thermal_zone="cpu")
CRITICAL_TEMP = assess(POLICY, temp_c=97.0)
CRITICAL_BATTERY = assess(POLICY, battery_pct=4.0, charging=False)


def test_cool_device_changes_nothing(tmp_path: Path) -> None:
    cfg, _ = scripted(tmp_path)
    plain = decide(cfg, Generate, RequestOptions(), RouteState())
    cool = route(cfg, assess(POLICY, temp_c=40.0, battery_pct=70.0, charging=False))
    assert cool.tiers == plain.tiers == [Tier.device, Tier.cloud]
    assert cool.notes == plain.notes and cool.prefer_smaller is None


def test_hot_keeps_the_tier_order_and_prefers_smaller_models(tmp_path: Path) -> None:
    cfg, _ = scripted(tmp_path)
    r = route(cfg, HOT)
    assert r.tiers == [Tier.device, Tier.cloud]
    assert r.prefer_smaller == "hot" and r.power_mode == "power_saver"
    assert ("device", "power_saver", HOT.reasons[0]) in r.notes


@pytest.mark.parametrize("state", [CRITICAL_TEMP, CRITICAL_BATTERY], ids=["temp", "battery"])
def test_critical_prefers_the_cloud_when_allowed(tmp_path: Path, state: DeviceState) -> None:
    cfg, _ = scripted(tmp_path, "[routing]\ndaily_cloud_budget_cny = 1.0\n")
    r = route(cfg, state)
    assert r.tiers == [Tier.cloud, Tier.device] and r.prefer_smaller
    assert r.notes[0][:2] == ("tier", "cloud") and "critical" in r.notes[0][2]
    # privacy always wins
    private = RequestOptions(data_classes=frozenset({DataClass.health}))
    r = route(cfg, state, private)
    assert r.tiers == [Tier.device] and r.notes[0][2].startswith("privacy")
    assert r.notes[1][0] == "device" and r.prefer_smaller  # the smallest device model instead
    assert route(cfg, state, RequestOptions(sensitive=True)).tiers == [Tier.device]
    # the user's local-only choice wins
    local = route(cfg, state, RequestOptions(mode=RoutingMode.local_only))
    assert local.tiers == [Tier.device] and local.notes[0][2] == "user choice: local only"
    # offline and a spent budget keep the device tier
    assert route(cfg, state, offline=True).tiers == [Tier.device]
    assert route(cfg, state, cloud_spent_today_cny=1.0).tiers == [Tier.device]
    # with the user preferring the cloud, it stays the user's choice
    cloud = route(cfg, state, RequestOptions(mode=RoutingMode.prefer_cloud))
    assert cloud.tiers == [Tier.cloud, Tier.device]
    assert cloud.notes[0][2] == "user choice: prefer cloud"
    # and critical beats the difficulty router's "easy"
    assert route(cfg, state, difficulty=0.0).tiers == [Tier.cloud, Tier.device]


def test_offline_from_the_network_provider_keeps_the_device_tier(tmp_path: Path) -> None:
    cfg, _ = scripted(tmp_path)
    state = assess(POLICY, temp_c=99.0, online=False, network="cloud.example:443 unreachable")
    r = route(cfg, state, offline=True)
    assert r.tiers == [Tier.device]
    assert r.notes[0][2] == "offline: the cloud is unreachable (cloud.example:443 unreachable)"


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    temp=st.one_of(st.none(), st.floats(-40, 150)),
    pct=st.one_of(st.none(), st.floats(0, 100)),
    charging=st.one_of(st.none(), st.booleans()),
    mode=st.sampled_from(list(RoutingMode)),
    sensitive=st.booleans(),
    classes=st.frozensets(st.sampled_from(list(DataClass)), max_size=3),
    offline=st.booleans(),
)
def test_device_state_never_overrides_privacy_or_local_only(
    tmp_path: Path,
    temp: float | None,
    pct: float | None,
    charging: bool | None,
    mode: RoutingMode,
    sensitive: bool,
    classes: frozenset[DataClass],
    offline: bool,
) -> None:
    cfg, _ = scripted(tmp_path)
    state = assess(cfg.device_policy, temp_c=temp, battery_pct=pct, charging=charging)
    opts = RequestOptions(mode=mode, sensitive=sensitive, data_classes=classes)
    r = route(cfg, state, opts, offline=offline)
    assert r == route(cfg, state, opts, offline=offline)  # deterministic
    private = sensitive or bool(classes & set(cfg.routing.private_data_classes))
    if private or offline or mode is RoutingMode.local_only:
        assert r.tiers == [Tier.device]
    elif state.prefer_cloud or mode is RoutingMode.prefer_cloud:
        assert r.tiers == [Tier.cloud, Tier.device]
    assert [n[2] for n in r.notes if n[0] == "device"] == list(state.reasons)


# -- smaller models first, in the orchestrator --------------------------------------------
@pytest.fixture
def two_sizes(tmp_path: Path) -> Iterator[tuple[Orchestrator, Fixed]]:
    """Both device models fit (big: 7B, 900 MB; small: 0.27B, 400 MB), big first in the matrix."""
    ScriptedBackend.available = True
    cfg, path = scripted(tmp_path, big_mb=900)
    sensors = Fixed(temp_c=40.0, battery_pct=80.0, charging=False, online=True)
    orch = Orchestrator(
        cfg,
        config_path=path,
        strict=True,
        ledger=False,
        extra_plugins=(("scripted", ScriptedPlugin()),),
        device=DeviceMonitor(cfg.device_policy, [sensors], cache_s=0),
    )
    try:
        yield orch, sensors
    finally:
        orch.close()


def test_smaller_model_first_when_hot_or_low_on_battery(two_sizes: Any) -> None:
    orch, sensors = two_sizes
    assert orch.invoke("generate", {"prompt": "hi", "max_tokens": 2}).record.model == "big"
    sensors.readings["temp_c"] = 85.0
    rec = orch.invoke("generate", {"prompt": "hi", "max_tokens": 2}).record
    assert rec.model == "small" and rec.tier is Tier.device
    why = {d.stage: d.reason for d in rec.reasons if d.accepted}
    assert why["device"].startswith("hot 85.0 °C >= 80 °C")
    assert why["model"].startswith("smaller device models first (hot)")
    sensors.readings.update(temp_c=40.0, battery_pct=15.0)
    assert orch.explain("generate", {"prompt": "hi"}).model == "small"
    sensors.readings["charging"] = True  # plugged in: the big model again, at full speed
    rec = orch.explain("generate", {"prompt": "hi"})
    assert rec.model == "big"
    assert [d.choice for d in rec.reasons if d.stage == "device"] == ["performance"]


def test_a_requested_model_is_not_reordered(two_sizes: Any) -> None:
    orch, sensors = two_sizes
    sensors.readings["temp_c"] = 90.0
    rec = orch.explain("generate", {"prompt": "hi"}, RequestOptions(model="big"))
    assert rec.model == "big"


def test_critical_with_private_data_runs_the_smallest_device_model(two_sizes: Any) -> None:
    orch, sensors = two_sizes
    sensors.readings["temp_c"] = 97.0
    public = orch.explain("generate", {"prompt": "hi"})
    assert public.tier is Tier.cloud and public.model == "cloud-big"
    private = orch.explain(
        "generate", {"prompt": "hi"}, RequestOptions(data_classes=frozenset({DataClass.health}))
    )
    assert private.tier is Tier.device and private.model == "small"


def test_offline_and_memory_come_from_the_injected_device(two_sizes: Any) -> None:
    orch, sensors = two_sizes
    sensors.readings.update(online=False, network="no route", mem_available_mb=300.0)
    rec = orch.explain("generate", {"prompt": "hi"}, RequestOptions(mode=RoutingMode.prefer_cloud))
    assert rec.tier is Tier.device
    assert "offline: the cloud is unreachable (no route)" in [d.reason for d in rec.reasons]
    # the governor budgets against the device's MemAvailable, below the profile's 1024 MB
    assert orch.device.mem_available_mb() == 300.0 and orch.governor.budget_mb() <= 300.0


def test_tensor_models_get_the_power_mode(two_sizes: Any) -> None:
    from aios import TensorModel
    from aios.model_cache import Loaded
    from aios.selection import Choice

    class Tensor(TensorModel):
        def run(self, inputs: dict[str, Any]) -> dict[str, Any]:
            return {}

        def close(self) -> None:
            pass

    orch, sensors = two_sizes
    spec = orch.config.model("small")
    model = Tensor(spec, "scripted")
    orch.models.get = lambda *args, **kwargs: Loaded(model, None)  # type: ignore[arg-type]
    sensors.readings["battery_pct"] = 12.0
    assert orch.loaded_model(Choice(spec, "scripted")).handle.power_mode == "power_saver"
    sensors.readings["charging"] = True
    assert orch.loaded_model(Choice(spec, "scripted")).handle.power_mode == "performance"


# -- traces -------------------------------------------------------------------------------
TRACE = """\
# a comment line
{"t": 0, "mem_available_mb": 5000, "temp_c": 40, "battery_pct": 60, "charging": false, "online": true}

{"t": 10, "temp_c": 85.5}
{"t": 20, "online": false, "battery_pct": null}
"""


def test_trace_values_hold_between_points(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(TRACE, encoding="utf-8")
    trace = load_trace(path)
    assert trace.times == (0, 10, 20) and trace.duration_s == 20
    assert trace.at(-1) == {}
    assert trace.at(5)["temp_c"] == 40 and trace.at(10)["temp_c"] == 85.5
    late = trace.at(1e6)
    assert late == {
        "mem_available_mb": 5000,
        "temp_c": 85.5,
        "battery_pct": None,
        "charging": False,
        "online": False,
    }


def test_json_array_traces(tmp_path: Path) -> None:
    points = [{"t": 0, "temp_c": 30}, {"t": 2.5, "charging": True}]
    (tmp_path / "a.json").write_text(json.dumps(points), encoding="utf-8")
    (tmp_path / "b.json").write_text(json.dumps({"points": points}), encoding="utf-8")
    for name in ("a.json", "b.json"):
        assert load_trace(tmp_path / name).at(3) == {"temp_c": 30, "charging": True}


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("bad.jsonl", '{"t": 0}\n{"t": 1, "temp_c": "hot"}\n', r"bad.jsonl:2: temp_c: .*'hot'"),
        ("bad.jsonl", '{"t": 0, "tmp_c": 4}\n', r"bad.jsonl:1: tmp_c: unknown key"),
        ("bad.jsonl", '{"temp_c": 4}\n', r"bad.jsonl:1: t: required key is missing"),
        ("bad.jsonl", '{"t": 5}\n{"t": 5}\n', r"bad.jsonl:2: t: 5 must be after the previous 5"),
        ("bad.jsonl", '{"t": 0}\n{"t": 1,\n', r"bad.jsonl:2: not valid JSON"),
        ("bad.jsonl", "[1, 2]\n", r"bad.jsonl:1: a point must be a JSON object, got list"),
        ("bad.jsonl", "# only a comment\n", r"bad.jsonl: the trace has no points"),
        ("bad.jsonl", '{"t": 0, "battery_pct": 101}\n', r"bad.jsonl:1: battery_pct: .*100"),
        ("bad.json", '[{"t": 0}, {"t": 1, "online": "maybe"}]', r"bad.json: points\[1\]: online"),
        ("bad.json", '{"t": 0}', r"bad.json: expected a JSON array"),
        ("bad.json", "[\n{]", r"bad.json:2: not valid JSON"),
    ],
)
def test_bad_traces_name_the_file_and_line(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TraceError, match=message) as info:
        load_trace(path)
    assert str(path) in str(info.value) and info.value.exit_code == 2


def test_missing_and_binary_traces(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="nope.jsonl: file not found"):
        load_trace(tmp_path / "nope.jsonl")
    (tmp_path / "bin.jsonl").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(TraceError, match="not UTF-8"):
        load_trace(tmp_path / "bin.jsonl")


def test_simulated_provider_follows_a_clock_or_a_seek(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(TRACE, encoding="utf-8")
    now = [50.0]
    sim = SimulatedProvider(load_trace(path), speed=2.0, clock=lambda: now[0])
    assert sim.read()["temp_c"] == 40
    now[0] += 5  # 10 trace seconds at double speed
    assert sim.read()["temp_c"] == 85.5
    sim.seek(20)
    assert sim.read()["online"] is False and sim.read()["network"] == "offline in the trace at 20 s"


def test_the_shipped_example_trace_parses() -> None:
    trace = load_trace(REPO / "oem_configs/traces/commute.jsonl")
    assert len(trace.times) >= 5


# -- network reachability on real sockets -------------------------------------------------
@pytest.fixture
def listening() -> Iterator[int]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    try:
        yield srv.getsockname()[1]
    finally:
        srv.close()


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_reachable_and_refused_hosts_are_online(listening: int) -> None:
    assert check_host("127.0.0.1", listening, 1.0) == (True, f"127.0.0.1:{listening} reachable")
    port = closed_port()
    ok, what = check_host("127.0.0.1", port, 1.0)
    # the host answered: the network is there, the service is down (the breaker's business)
    assert ok and what == f"127.0.0.1:{port} refused the connection (host up)"


def test_a_host_that_does_not_answer_is_offline() -> None:
    # A listener whose accept queue is full drops new SYNs: the connect times out.
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    port = srv.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port), timeout=1.0)
    try:
        t0 = time.perf_counter()
        provider = NetworkProvider([("127.0.0.1", port)], timeout_s=0.2)
        assert provider.check() == (False, f"127.0.0.1:{port} did not answer within 0.2 s")
        assert time.perf_counter() - t0 < 2.0
    finally:
        filler.close()
        srv.close()


class CountingProvider(NetworkProvider):
    checks = 0

    def check(self) -> tuple[bool, str]:
        self.checks += 1
        return super().check()


def test_network_checks_run_in_the_background_and_are_cached(listening: int) -> None:
    now = [0.0]
    provider = CountingProvider(
        [("127.0.0.1", closed_port()), ("127.0.0.1", listening)],
        timeout_s=1.0,
        cache_s=5.0,
        clock=lambda: now[0],
    )
    first = provider.read()
    assert first["online"] is None  # the request path never waits for a connect
    provider.wait(5)
    assert provider.read()["online"] is True and provider.checks == 1
    now[0] += 4.0
    provider.read()
    provider.wait(5)
    assert provider.checks == 1  # within cache_s: no new check
    now[0] += 2.0
    assert provider.read()["online"] is True  # stale: the last result, and a check starts
    provider.wait(5)
    assert provider.checks == 2


def test_aios_offline_forces_offline(monkeypatch: pytest.MonkeyPatch, listening: int) -> None:
    monkeypatch.setenv("AIOS_OFFLINE", "1")
    provider = NetworkProvider([("127.0.0.1", listening)])
    assert provider.read() == {"online": False, "network": "forced offline by AIOS_OFFLINE"}
    state = DeviceMonitor(POLICY, [Fixed(online=True)], cache_s=0).snapshot()
    assert state.online is False


def test_cloud_hosts_come_from_the_endpoints_cloud_models_use(tmp_path: Path) -> None:
    cfg, _ = scripted(tmp_path)
    assert cloud_hosts(cfg) == [("127.0.0.1", 9)]
    cfg, _ = load_config(REPO / "oem_configs/qualcomm_flagship.toml")
    assert cloud_hosts(cfg) == [("llm.acme.example", 443)]
    cfg, _ = load_config(None)  # the reference config has no cloud models
    assert cloud_hosts(cfg) == []


# -- aios simulate ------------------------------------------------------------------------
SIM_TRACE = """\
{"t": 0, "temp_c": 40, "battery_pct": 70, "charging": false, "online": true}
{"t": 30, "temp_c": 86}
{"t": 60, "temp_c": 50, "charging": true}
"""


def test_aios_simulate_json(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    trace.write_text(SIM_TRACE, encoding="utf-8")
    proc = run_cli("simulate", str(trace), "--skill", "summarize", "--text", "Hi.", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    steps = out["steps"]
    assert [s["t"] for s in steps] == [0, 30, 60]
    assert [s["power_mode"] for s in steps] == ["balanced", "power_saver", "performance"]
    assert [s["model"] for s in steps] == ["gemma3-270m", "smollm2-135m-instruct", "gemma3-270m"]
    assert steps[1]["state"]["temp_c"] == 86 and steps[1]["state"]["conditions"] == ["hot"]
    device_reasons = [r["reason"] for r in steps[1]["reasons"] if r["stage"] == "device"]
    assert device_reasons == ["hot 86.0 °C >= 80 °C: smaller models first; power saver"]


def test_aios_simulate_table(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    trace.write_text(SIM_TRACE, encoding="utf-8")
    proc = run_cli("simulate", str(trace), "--text", "Hi.")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"trace {trace}: 3 steps, skill summarize")
    assert any("power_saver" in line and "smollm2-135m-instruct" in line for line in lines)
    assert any("device  hot 86.0 °C >= 80 °C" in line for line in lines)


def test_aios_simulate_bad_trace_exits_2_without_a_traceback(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    trace.write_text('{"t": 0}\n{"t": 1, "charging": "sometimes"}\n', encoding="utf-8")
    proc = run_cli("simulate", str(trace))
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"aios: error: {trace}:2: charging: ")
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    proc = run_cli("simulate", str(tmp_path / "missing.jsonl"), "--json")
    assert proc.returncode == 2
    assert json.loads(proc.stdout)["error"]["code"] == "trace_invalid"
