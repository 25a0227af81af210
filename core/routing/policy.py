"""Device or cloud: the routing policy, in a fixed order of precedence.

1. privacy: private skills, private data classes and requests marked sensitive stay on device;
2. the user's choice: local only / prefer local / prefer cloud;
3. availability: offline keeps everything on device (an open breaker or a model that does not
   fit is handled per model when candidates are tried, moving on to the other tier);
4. cost: once the device's daily cloud budget is spent, the cloud is off;
5. device: a critical temperature or battery puts the cloud first (never past 1-4); hot or low
   on battery puts smaller device models first; either way the reasons are noted ("device");
6. difficulty: with prefer-local, a learned score above the threshold puts the cloud first.

The decision is a pure function of the config, the skill, the request options and the state
snapshot, so the same inputs always give the same route (and ``aios explain`` shows it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from aios.config.schema import OEMConfig, RoutingMode
from aios.device.state import DeviceState
from aios.record import ExecutionRecord
from aios.skill import Skill
from aios.types import DataClass, Priority, Sensitivity, Tier


class RequestOptions(BaseModel):
    """Per-request routing inputs an app (or the CLI) may set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str | None = Field(default=None, description="Run on this model of the matrix.")
    mode: RoutingMode | None = Field(default=None, description="The user's choice for this call.")
    sensitive: bool = Field(default=False, description="Never send this request to the cloud.")
    sensitive_because: str | None = Field(
        default=None,
        max_length=300,
        description="Why the request is sensitive, when aios marked it (an agent step fed with "
        "private data); shown in the record's privacy reason.",
    )
    data_classes: frozenset[DataClass] = Field(
        default_factory=frozenset, description="Kinds of user data the request carries."
    )
    priority: Priority = Field(
        default=Priority.foreground,
        description="Foreground (the app on screen) is served before background work.",
    )
    app: str | None = Field(
        default=None,
        max_length=128,
        description="The calling app; apps take turns in a model's queue.",
    )


@dataclass(frozen=True)
class RouteState:
    """What the device knows at decision time."""

    offline: bool = False
    cloud_spent_today_cny: float = 0.0
    difficulty: float | None = None  # None: no difficulty router configured, or it failed
    difficulty_error: str | None = None  # why a configured router gave no score
    device: DeviceState | None = None  # None: no device state (nothing steers on it)


@dataclass
class Route:
    tiers: list[Tier]
    cascade: bool = False
    private: bool = False
    prefer_smaller: str | None = None  # why smaller device models go first, when they do
    power_mode: str = "balanced"  # the device state's power mode, for backends
    notes: list[tuple[str, str, str]] = field(default_factory=list)  # (stage, choice, reason)

    def note(self, stage: str, choice: str, reason: str) -> None:
        self.notes.append((stage, choice, reason))

    def apply(self, record: ExecutionRecord) -> None:
        for stage, choice, reason in self.notes:
            record.decide(stage, reason, choice)  # type: ignore[arg-type]


def privacy_reason(cfg: OEMConfig, skill: type[Skill], opts: RequestOptions) -> str | None:
    """Why this request's data must stay on the device, or None."""
    if opts.sensitive:
        why = f" ({opts.sensitive_because})" if opts.sensitive_because else ""
        return f"the request is marked sensitive{why}"
    if skill.sensitivity is Sensitivity.private:
        return f"skill '{skill.name}' handles private data"
    private = (set(skill.data_classes) | set(opts.data_classes)) & set(
        cfg.routing.private_data_classes
    )
    if private:
        names = ", ".join(sorted(d.value for d in private))
        return f"data class(es) {names} never leave the device"
    return None


def effective_mode(cfg: OEMConfig, skill: type[Skill], opts: RequestOptions) -> RoutingMode:
    settings = cfg.skills.get(skill.name)
    return opts.mode or (settings.mode if settings and settings.mode else None) or cfg.routing.mode


def decide(cfg: OEMConfig, skill: type[Skill], opts: RequestOptions, state: RouteState) -> Route:
    route = _tiers(cfg, skill, opts, state)
    device = state.device
    if device is not None:
        route.power_mode = device.power_mode
        if device.prefer_smaller:
            route.prefer_smaller = ", ".join(c for c in device.conditions if c != "plugged-in")
        for why in device.reasons:
            route.note("device", device.power_mode, why)
    return route


def _tiers(cfg: OEMConfig, skill: type[Skill], opts: RequestOptions, state: RouteState) -> Route:
    device_only = [Tier.device]
    private = privacy_reason(cfg, skill, opts)
    if private:
        route = Route(device_only, private=True)
        route.note("tier", "device", f"privacy: {private}")
        return route
    mode = effective_mode(cfg, skill, opts)
    if mode is RoutingMode.local_only:
        route = Route(device_only)
        route.note("tier", "device", "user choice: local only")
        return route
    if state.offline:
        route = Route(device_only)
        why = "offline: the cloud is unreachable"
        if state.device is not None and state.device.online is False and state.device.network:
            why += f" ({state.device.network})"
        route.note("tier", "device", why)
        return route
    budget = cfg.routing.daily_cloud_budget_cny
    if state.cloud_spent_today_cny >= budget:
        route = Route(device_only)
        route.note(
            "tier",
            "device",
            f"cost: today's cloud spend {state.cloud_spent_today_cny:.3f} CNY reached the "
            f"daily budget of {budget:.3f} CNY",
        )
        return route
    if mode is RoutingMode.prefer_cloud:
        route = Route([Tier.cloud, Tier.device])
        route.note("tier", "cloud", "user choice: prefer cloud")
        return route
    if state.device is not None and state.device.prefer_cloud:
        route = Route([Tier.cloud, Tier.device])
        critical = ", ".join(c for c in state.device.conditions if c.startswith("critical"))
        route.note("tier", "cloud", f"device: {critical}, the cloud first")
        return route
    threshold = cfg.routing.difficulty_threshold
    if state.difficulty is not None and state.difficulty >= threshold:
        route = Route([Tier.cloud, Tier.device])
        route.note(
            "tier", "cloud", f"difficulty {state.difficulty:.2f} >= threshold {threshold:.2f}"
        )
        return route
    route = Route([Tier.device, Tier.cloud], cascade=cfg.routing.cascade)
    if state.difficulty is not None:
        why = f"difficulty {state.difficulty:.2f} < threshold {threshold:.2f}"
    elif state.difficulty_error:
        why = f"prefer local (difficulty router unavailable: {state.difficulty_error})"
    else:
        why = "prefer local (no difficulty router configured)"
    route.note("tier", "device", why + ("; cascade to cloud if unsure" if route.cascade else ""))
    return route
