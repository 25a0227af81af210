"""`/v1/models/...`: residency of the device models, and explicit load, unload and pin."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from aios.config.schema import ModelSpec
from aios.orchestrator import Orchestrator
from aios.service.common import Who
from aios.service.errors import ConflictError, NotFoundError
from aios.service.schemas import (
    FeatureStatus,
    LoadRequest,
    ModelAction,
    ModelStatus,
    ModelStatusList,
    PinRequest,
    PullStarted,
    error_responses,
)
from aios.types import Tier

router = APIRouter(prefix="/v1/models", tags=["models"])
ERRORS = error_responses(401, 404, 408, 409, 413, 422, 429, 503, 507)


def _device_model(orch: Orchestrator, model_id: str) -> ModelSpec:
    try:
        spec = orch.config.model(model_id)
    except KeyError:
        raise NotFoundError(
            f"model '{model_id}' is not in the model matrix", hint="GET /v1/models/status"
        ) from None
    if spec.tier is not Tier.device:
        raise ConflictError(f"model '{model_id}' is a cloud model: it is never loaded here")
    return spec


def _status(orch: Orchestrator, spec: ModelSpec) -> ModelStatus:
    residents = [r for k, r in list(orch.governor.resident.items()) if k[0] == spec.id]
    stats = [g.stats() for _h, g in orch.models.loaded() if g.model_id == spec.id]
    return ModelStatus(
        id=spec.id,
        tier=spec.tier.value,
        capabilities=[c.value for c in spec.capabilities],
        resident=bool(stats),
        memory_mb=round(sum(r.footprint_mb for r in residents) or float(spec.memory_mb), 1),
        pinned=any(r.pinned for r in residents),
        active_calls=sum(s.active for s in stats),
        waiting_calls=sum(s.waiting for s in stats),
    )


def _action(orch: Orchestrator, spec: ModelSpec, changed: bool) -> ModelAction:
    st = _status(orch, spec)
    return ModelAction(id=spec.id, resident=st.resident, pinned=st.pinned, changed=changed)


@router.get("/status", response_model=ModelStatusList, summary="Which device models are loaded")
def models_status(who: Who) -> ModelStatusList:
    orch = who.gen.orchestrator
    return ModelStatusList(
        budget_mb=round(orch.governor.budget_mb(), 1),
        used_mb=round(orch.governor.used_mb(), 1),
        models=[_status(orch, m) for m in orch.config.models if m.tier is Tier.device],
    )


@router.post("/{model_id}/load", response_model=ModelAction, responses=ERRORS)
async def load_model(model_id: str, who: Who, body: LoadRequest | None = None) -> ModelAction:
    """Load a device model now (through the memory governor); 507 when it does not fit."""
    who.require_operator()
    orch = who.gen.orchestrator
    spec = _device_model(orch, model_id)
    was = _status(orch, spec).resident
    pin = body.pin if body else False
    await run_in_threadpool(orch.load_model, model_id, pin=pin)
    return _action(orch, spec, changed=not was or pin)


@router.post("/{model_id}/unload", response_model=ModelAction, responses=ERRORS)
async def unload_model(model_id: str, who: Who) -> ModelAction:
    """Unload a model once its running calls finish; `changed` is false if it was not loaded."""
    who.require_operator()
    orch = who.gen.orchestrator
    spec = _device_model(orch, model_id)
    changed = await run_in_threadpool(orch.unload_model, model_id)
    return _action(orch, spec, changed=changed)


@router.post("/{model_id}/pin", response_model=ModelAction, responses=ERRORS)
def pin_model(model_id: str, body: PinRequest, who: Who) -> ModelAction:
    """Pin a loaded model (never evicted) or release the pin; 409 when it is not loaded."""
    who.require_operator()
    orch = who.gen.orchestrator
    spec = _device_model(orch, model_id)
    if not orch.pin_model(model_id, body.pinned):
        raise ConflictError(
            f"model '{model_id}' is not loaded", hint=f"POST /v1/models/{model_id}/load first"
        )
    return _action(orch, spec, changed=True)


@router.get("/features", response_model=FeatureStatus, summary="What this device can run now")
def features(who: Who) -> FeatureStatus:
    """Each model and skill: available / downloadable / downloading (progress) / unavailable
    (reason). Nothing is loaded to answer."""
    from aios.delivery.status import feature_status

    return FeatureStatus(**feature_status(who.gen.orchestrator))


@router.post("/{model_id}/pull", response_model=PullStarted, status_code=202, responses=ERRORS)
def pull_model(model_id: str, who: Who) -> PullStarted:
    """Start downloading a model from the OEM model server; progress shows in `/features`."""
    who.require_operator()
    orch = who.gen.orchestrator
    spec = _device_model(orch, model_id)
    if spec.source is None or not spec.source.url:
        raise ConflictError(f"model '{model_id}' is not delivered by download (no source url)")
    if orch.delivery.installed(spec):
        return PullStarted(id=model_id, state="available")
    orch.delivery.start(spec)
    return PullStarted(
        id=model_id, state="downloading", progress=orch.delivery.progress.get(model_id)
    )
