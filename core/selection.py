"""Choose a model and backend for a skill request, recording why each candidate won or lost.

Order of candidates: the model the caller asked for, else the skill's model list from the OEM
config, else matrix order. A candidate must have the skill's capabilities, be allowed on this
device profile, fit its memory budget, pass the privacy and routing policy, and have a backend
that is enabled on the profile, registered and available here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aios.backend import Availability
from aios.config.schema import DeviceProfile, ModelSpec, OEMConfig, RoutingMode
from aios.record import ExecutionRecord
from aios.skill import Skill
from aios.types import Sensitivity, Tier


@dataclass(frozen=True)
class Choice:
    model: ModelSpec
    backend: str


def private_reason(cfg: OEMConfig, skill: type[Skill]) -> str | None:
    """Why this skill's data must stay on the device, or None."""
    if skill.sensitivity is Sensitivity.private:
        return f"skill '{skill.name}' handles private data"
    private = set(skill.data_classes) & set(cfg.routing.private_data_classes)
    if private:
        names = ", ".join(sorted(d.value for d in private))
        return f"data class(es) {names} never leave the device"
    return None


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
    probe: Callable[[str], Availability | None],
    requested: str | None = None,
) -> Choice | None:
    """The first usable (model, backend), or None; every rejection is added to ``record``.

    ``probe(name)`` returns the backend's availability, or None if no plugin registers it.
    """
    needed = set(skill.capabilities)
    settings = cfg.skills.get(skill.name)
    mode = (settings.mode if settings and settings.mode else None) or cfg.routing.mode
    stay_local = private_reason(cfg, skill)
    budget = profile.model_budget_mb

    for m in candidate_models(cfg, skill, requested):
        missing = needed - set(m.capabilities)
        if missing:
            if requested:
                names = ", ".join(sorted(c.value for c in missing))
                record.decide("model", f"lacks capability {names}", m.id, accepted=False)
            continue
        if m.profiles and profile.name not in m.profiles:
            record.decide(
                "model", f"not allowed on device profile '{profile.name}'", m.id, accepted=False
            )
            continue
        if m.tier is Tier.cloud:
            if stay_local:
                record.decide("tier", f"cloud excluded: {stay_local}", m.id, accepted=False)
                continue
            if mode is RoutingMode.local_only:
                record.decide("tier", "cloud excluded: routing mode local_only", m.id, False)
                continue
        elif m.memory_mb > budget:
            record.decide(
                "model",
                f"needs {m.memory_mb} MB, device budget is {budget} MB "
                f"(ram {profile.ram_mb} - os {profile.os_reserve_mb} "
                f"- keep-alive {profile.keepalive_reserve_mb})",
                m.id,
                accepted=False,
            )
            continue
        picked = _first_backend(m, profile, record, probe)
        if picked is None:
            continue
        backend, backend_reason = picked
        why = (
            "requested by caller"
            if requested
            else (
                "first in the skill's configured model list"
                if settings and settings.models
                else "first model in the matrix order with the needed capabilities that fits"
            )
        )
        record.decide("model", f"{why}; needs {m.memory_mb} MB of {budget} MB budget", m.id)
        record.decide("backend", backend_reason, backend)
        record.decide("tier", f"{m.tier.value} model", m.tier.value)
        return Choice(model=m, backend=backend)
    return None


def _first_backend(
    m: ModelSpec,
    profile: DeviceProfile,
    record: ExecutionRecord,
    probe: Callable[[str], Availability | None],
) -> tuple[str, str] | None:
    # Cloud models are served through their endpoint's backend (the "openai" backend).
    names = m.backends or (["openai"] if m.tier is Tier.cloud else [])
    rejected = []
    for name in names:
        if m.tier is Tier.device and name not in profile.backends:
            rejected.append(f"{name}: not enabled on profile '{profile.name}'")
            continue
        avail = probe(name)
        if avail is None:
            rejected.append(f"{name}: no plugin registers it")
            continue
        if not avail.available:
            rejected.append(f"{name}: {avail.reason}")
            continue
        return name, f"first enabled and available backend of {m.id}: {avail.reason}"
    record.decide("model", "no usable backend (" + "; ".join(rejected) + ")", m.id, accepted=False)
    return None
