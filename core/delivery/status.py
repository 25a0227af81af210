"""Feature status, as Android AICore reports it: per model and per skill, one of
``available``, ``downloadable``, ``downloading`` (with progress) or ``unavailable`` (with the
reason). Cheap: it reads probes, files and download progress, and never loads a model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aios.backend import Availability
from aios.config.schema import ModelSpec
from aios.device.network import forced_offline
from aios.record import ExecutionRecord
from aios.routing.policy import RequestOptions, decide
from aios.selection import candidate_models, first_backend
from aios.skill import Skill
from aios.sources import model_url, size_text, source_problem
from aios.types import Tier

if TYPE_CHECKING:
    from aios.orchestrator import Orchestrator

AVAILABLE, DOWNLOADABLE, DOWNLOADING, UNAVAILABLE = (
    "available",
    "downloadable",
    "downloading",
    "unavailable",
)


def feature_status(orch: Orchestrator) -> dict[str, Any]:
    """``{"models": {id: status}, "skills": {name: status}}`` for this device, right now."""
    offline = orch.device.snapshot().online is False or forced_offline()
    models = {m.id: model_status(orch, m, offline) for m in orch.config.models}
    skills = {name: skill_status(orch, name, models) for name in orch.skill_names()}
    return {"profile": orch.profile.name, "models": models, "skills": skills}


def _probe(orch: Orchestrator) -> Any:
    def probe(name: str, model: ModelSpec) -> Availability | None:
        avail = orch.probe(name)
        if avail is None or not avail.available:
            return avail
        backend = orch.backend(name)
        why_not = backend.health(model) if backend else None  # e.g. an open circuit breaker
        return Availability(False, why_not) if why_not else avail

    return probe


def model_status(orch: Orchestrator, m: ModelSpec, offline: bool = False) -> dict[str, Any]:
    """One model's state and, unless it is available, why (or how to get it)."""
    row: dict[str, Any] = {"tier": m.tier.value}
    profile = orch.profile
    if m.profiles and profile.name not in m.profiles:
        return {**row, "state": UNAVAILABLE, "reason": f"not allowed on profile '{profile.name}'"}
    if m.tier is Tier.device and m.memory_mb > profile.model_budget_mb:
        return {
            **row,
            "state": UNAVAILABLE,
            "reason": f"needs {m.memory_mb} MB, more than the device's model budget of "
            f"{profile.model_budget_mb} MB",
        }
    if m.tier is Tier.cloud and offline:
        return {**row, "state": UNAVAILABLE, "reason": "the device is offline"}
    record = ExecutionRecord(skill="status", status="explained")
    picked = first_backend(m, profile, record, _probe(orch))
    if picked is None:
        why = "; ".join(d.reason for d in record.reasons if not d.accepted)
        return {**row, "state": UNAVAILABLE, "reason": why}
    row["backend"] = picked[0]
    src = m.source
    if m.tier is Tier.cloud or src is None:
        return {**row, "state": AVAILABLE}
    delivery = orch.delivery
    if src.url:
        if delivery.installed(m):
            return {**row, "state": AVAILABLE}
        progress = delivery.progress.get(m.id)
        if progress is not None and progress["state"] in ("downloading", "verifying"):
            return {**row, "state": DOWNLOADING, **_progress_fields(progress)}
        url = model_url(src, delivery.settings.base_url)
        if url is None:
            return {
                **row,
                "state": UNAVAILABLE,
                "reason": f"relative url '{src.url}' needs `delivery.base_url`",
            }
        row.update(
            state=DOWNLOADABLE,
            reason=f"not downloaded ({size_text(src.size_bytes)}): run `aios models pull {m.id}`",
            url=url,
            bytes_total=src.size_bytes,
            bytes_on_disk=delivery.partial_bytes(m),
        )
        if progress is not None and progress.get("error"):
            row["last_error"] = progress["error"]
        return row
    problem = source_problem(src, orch.base_dir, orch.models.cache_dir, orch.plugins.builders)
    if problem:
        return {**row, "state": UNAVAILABLE, "reason": problem}
    return {**row, "state": AVAILABLE}


def _progress_fields(p: dict[str, Any]) -> dict[str, Any]:
    keys = ("bytes_done", "bytes_total", "percent", "rate_bps", "started_at")
    return {"progress": {k: p[k] for k in keys}, "phase": p["state"]}


def skill_status(
    orch: Orchestrator, name: str, models: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """A skill is as available as the best model it may use here (in routing order)."""
    cls = orch.plugins.skills[name]
    if not cls.capabilities:
        return {"state": AVAILABLE, "reason": "needs no model"}
    try:
        state = orch.route_state(cls, None, RequestOptions())  # type: ignore[arg-type]
        tiers = decide(orch.config, cls, RequestOptions(), state).tiers
    except Exception:  # a broken ledger or device reading must not hide the status
        tiers = [Tier.device, Tier.cloud]
    needed = set(cls.capabilities)
    usable = [
        m
        for tier in tiers
        for m in candidate_models(orch.config, cls, None)
        if m.tier is tier and needed <= set(m.capabilities)
    ]
    for m in usable:
        if models[m.id]["state"] == AVAILABLE:
            return {"state": AVAILABLE, "model": m.id, "tier": m.tier.value}
    has_fallback = cls.fallback is not Skill.fallback
    for m in usable:
        st = models[m.id]
        if st["state"] in (DOWNLOADING, DOWNLOADABLE):
            out = {"state": st["state"], "model": m.id, "reason": st.get("reason", "")}
            if "progress" in st:
                out["progress"] = st["progress"]
            if has_fallback:
                out["fallback"] = "answers without a model until then"
            return out
    if has_fallback:
        return {"state": AVAILABLE, "reason": "no model here: the skill's fallback answers"}
    if not usable:
        caps = ", ".join(sorted(c.value for c in needed))
        return {"state": UNAVAILABLE, "reason": f"no model it may use here can do {caps}"}
    why = "; ".join(f"{m.id}: {models[m.id].get('reason', '')}" for m in usable)
    return {"state": UNAVAILABLE, "reason": why}
