"""Choose a model and backend for a skill request, recording why each candidate won or lost.

Tiers are tried in the order the routing policy chose; within a tier, the model the caller
asked for, else the skill's model list from the OEM config, else matrix order. A candidate must
have the skill's capabilities, be allowed on this device profile, fit its memory budget (device)
or have a healthy endpoint (cloud), and have a backend that is enabled on the profile,
registered and available here. When the device is hot or low on battery
(``route.prefer_smaller``), device models are tried smallest ``parameters_b`` first, unless
the caller named one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aios.backend import Availability
from aios.config.schema import DeviceProfile, ModelSpec, OEMConfig
from aios.record import ExecutionRecord
from aios.routing.policy import Route
from aios.skill import Skill
from aios.types import Capability, Tier


@dataclass(frozen=True)
class Choice:
    model: ModelSpec
    backend: str


def candidate_models(cfg: OEMConfig, skill: type[Skill], requested: str | None) -> list[ModelSpec]:
    if requested:
        return [cfg.model(requested)]
    settings = cfg.skills.get(skill.name)
    if settings and settings.models:
        return [cfg.model(mid) for mid in settings.models]
    return list(cfg.models)


def choose(
    cfg: OEMConfig,
    profile: DeviceProfile,
    skill: type[Skill],
    record: ExecutionRecord,
    probe: Callable[[str, ModelSpec], Availability | None],
    route: Route,
    requested: str | None = None,
) -> Choice | None:
    """The first usable (model, backend) in the route's tier order, or None.

    Every rejected candidate is added to ``record`` with its reason. ``probe(name, model)``
    says whether backend ``name`` can serve ``model`` now (None if no plugin registers it):
    installed and working here, and healthy for this model (e.g. its endpoint's breaker).
    """
    needed = set(skill.capabilities)
    settings = cfg.skills.get(skill.name)
    budget = profile.model_budget_mb
    candidates = candidate_models(cfg, skill, requested)
    smaller = route.prefer_smaller if not requested else None
    if smaller:  # stable: equal sizes and the cloud tier keep their order
        candidates.sort(key=lambda m: m.parameters_b if m.tier is Tier.device else 0.0)
    for tier in route.tiers:
        for m in candidates:
            if m.tier is not tier:
                continue
            missing = needed - set(m.capabilities)
            if missing:
                if requested:
                    names = ", ".join(sorted(c.value for c in missing))
                    record.decide("model", f"lacks capability {names}", m.id, accepted=False)
                continue
            if m.profiles and profile.name not in m.profiles:
                record.decide(
                    "model", f"not allowed on device profile '{profile.name}'", m.id, False
                )
                continue
            if m.tier is Tier.device and m.memory_mb > budget:
                record.decide(
                    "model",
                    f"needs {m.memory_mb} MB, device budget is {budget} MB "
                    f"(ram {profile.ram_mb} - os {profile.os_reserve_mb} "
                    f"- keep-alive {profile.keepalive_reserve_mb})",
                    m.id,
                    accepted=False,
                )
                continue
            picked = first_backend(m, profile, record, probe)
            if picked is None:
                continue
            backend, backend_reason = picked
            why = (
                "requested by caller"
                if requested
                else (
                    "first in the skill's configured model list"
                    if settings and settings.models
                    else "first model in the matrix order with the needed capabilities"
                )
            )
            if m.tier is Tier.device and smaller:
                why = f"smaller device models first ({smaller}): the smallest usable one"
            if m.tier is Tier.device:
                why += f"; needs {m.memory_mb} MB of {budget} MB budget"
            record.decide("model", why, m.id)
            record.decide("backend", backend_reason, backend)
            return Choice(model=m, backend=backend)
    excluded = {Tier.device, Tier.cloud} - set(route.tiers)
    for m in candidates:
        if m.tier in excluded and needed <= set(m.capabilities):
            record.decide("model", f"{m.tier.value} tier excluded by policy", m.id, False)
    return None


def first_backend(
    m: ModelSpec,
    profile: DeviceProfile,
    record: ExecutionRecord,
    probe: Callable[[str, ModelSpec], Availability | None],
) -> tuple[str, str] | None:
    rejected = []
    for name in m.backends:
        if m.tier is Tier.device and name not in profile.backends:
            rejected.append(f"{name}: not enabled on profile '{profile.name}'")
            continue
        avail = probe(name, m)
        if avail is None:
            rejected.append(f"{name}: no plugin registers it")
            continue
        if not avail.available:
            rejected.append(f"{name}: {avail.reason}")
            continue
        return name, f"first enabled and available backend of {m.id}: {avail.reason}"
    record.decide("model", "no usable backend (" + "; ".join(rejected) + ")", m.id, accepted=False)
    return None


def choose_auxiliary(
    cfg: OEMConfig,
    profile: DeviceProfile,
    skill: type[Skill],
    capability: Capability,
    record: ExecutionRecord,
    probe: Callable[[str, ModelSpec], Availability | None],
) -> Choice | None:
    """A device model with ``capability`` that a skill uses beside its main model.

    The skill's configured model list is tried first, then the matrix order. Device tier only:
    auxiliary models read the user's own data (photos to tag), which never leaves the device.
    """
    budget = profile.model_budget_mb
    listed = candidate_models(cfg, skill, None)
    ordered = listed + [m for m in cfg.models if m not in listed]
    for m in ordered:
        if m.tier is not Tier.device or capability not in m.capabilities:
            continue
        if m.profiles and profile.name not in m.profiles:
            continue
        if m.memory_mb > budget:
            record.decide("model", f"auxiliary: needs {m.memory_mb} MB of {budget} MB", m.id, False)
            continue
        picked = first_backend(m, profile, record, probe)
        if picked is None:
            continue
        record.decide("model", f"auxiliary {capability.value} model, on device", m.id)
        return Choice(model=m, backend=picked[0])
    return None
