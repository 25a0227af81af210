"""How a routed request is carried out: the skill's fallback when no model can serve it,
falling back to the device when the cloud fails, and cascade (device first, cloud if unsure).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING

from pydantic import BaseModel

from aios.context import SkillContext
from aios.errors import CloudError, NoModelAvailableError
from aios.memory.governor import MemoryBudgetError
from aios.routing.policy import RequestOptions, Route
from aios.scheduler import QueueFullError
from aios.skill import Skill
from aios.streams import drain
from aios.types import Tier

if TYPE_CHECKING:
    from aios.orchestrator import Orchestrator


def no_model(
    orch: Orchestrator,
    cls: type[Skill],
    skill: Skill,
    valid: BaseModel,
    ctx: SkillContext,
    opts: RequestOptions,
) -> BaseModel:
    record = ctx.record
    # A model the caller named explicitly is a promise: no silent fallback.
    output = None if opts.model else skill.fallback(valid, ctx)
    if output is None:
        caps = ", ".join(sorted(c.value for c in cls.capabilities))
        rejected = "; ".join(f"{d.choice}: {d.reason}" for d in record.reasons if not d.accepted)
        raise NoModelAvailableError(
            f"no model with {caps} can run skill '{cls.name}' on device profile "
            f"'{orch.profile.name}'" + (f" ({rejected})" if rejected else "")
        )
    record.fallback = record.fallback or "skill-fallback"
    record.tier = Tier.device  # fallbacks run in-process, on the device
    return output


def run_with_fallback(
    orch: Orchestrator,
    cls: type[Skill],
    skill: Skill,
    valid: BaseModel,
    ctx: SkillContext,
    route: Route,
    streaming: bool,
) -> Generator[str, None, BaseModel]:
    """Run the skill; when its tier fails, go to the other tier if policy allows.

    The cloud failing (unreachable, timeout, bad answer) falls back to the device; a device
    model that the memory governor cannot admit, or whose queue is full, falls over to the
    cloud. Never after text has already been streamed to the caller.
    """
    emitted = False
    gen = skill.stream(valid, ctx)
    try:
        while True:
            try:
                delta = next(gen)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            emitted = True
            yield delta
    except (CloudError, MemoryBudgetError, QueueFullError) as exc:
        if isinstance(exc, CloudError):
            other, failed = Tier.device, "cloud failed"
        else:
            other = Tier.cloud
            failed = "device memory" if isinstance(exc, MemoryBudgetError) else "device busy"
        record = ctx.record
        if other not in route.tiers or (streaming and emitted):
            raise
        record.decide("tier", f"{failed} ({exc.code}): {exc}; retrying on {other.value}", other)
        choice = orch.choose_model(cls, record, Route([other]), None)
        if choice is None:
            raise
        retry = ctx.fork(choice)
        return (yield from skill.stream(valid, retry))


def cascade(
    orch: Orchestrator,
    cls: type[Skill],
    skill: Skill,
    valid: BaseModel,
    ctx: SkillContext,
    route: Route,
) -> Generator[str, None, BaseModel]:
    """Answer on device; escalate to the cloud when the device model is unsure."""
    record = ctx.record
    threshold = orch.config.routing.cascade_min_logprob
    ctx.want_logprobs = True
    buffered: list[str] = []
    device_output = drain(skill.stream(valid, ctx), buffered.append)
    confidence = ctx.mean_logprob
    device_model = record.model
    escalate = confidence is not None and confidence < threshold
    record.cascade = {
        "device_model": device_model,
        "device_mean_logprob": confidence,
        "threshold": threshold,
        "escalated": False,
        "device_output": device_output.model_dump(mode="json"),
    }
    if escalate:
        cloud = orch.choose_model(cls, record, Route([Tier.cloud]), None)
        if cloud is not None:
            record.decide(
                "tier",
                f"cascade: device mean log-prob {confidence:.2f} < {threshold:.2f}; "
                "escalated to the cloud",
                "cloud",
            )
            retry = ctx.fork(cloud)
            try:
                output = yield from skill.stream(valid, retry)
            except CloudError as exc:
                record.decide("tier", f"cloud failed ({exc}); keeping the device answer", None)
                record.model, record.backend, record.tier = device_model, None, Tier.device
            else:
                record.cascade["escalated"] = True
                return output  # type: ignore[no-any-return]
    else:
        why = (
            "no confidence reported"
            if confidence is None
            else f"mean log-prob {confidence:.2f} >= {threshold:.2f}"
        )
        record.decide("tier", f"cascade: device answer kept ({why})", "device")
    yield from buffered
    return device_output  # type: ignore[no-any-return]
