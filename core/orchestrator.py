"""The orchestrator: validate a request, choose model and backend, run the skill, record it all.

One ``Orchestrator`` owns the plugins, the backends (probed once, lazily) and the loaded models
(loaded lazily, reused across requests). Every request, successful or not, emits one structlog
event ``aios.request`` carrying its execution record.
"""

from __future__ import annotations

import difflib
import json
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from pydantic import BaseModel, ValidationError

from aios.backend import Availability, Backend, TensorModel
from aios.cloud.ledger import Ledger
from aios.cloud.ledger import default_path as ledger_path
from aios.config.checks import check_config
from aios.config.loader import format_loc, load_config
from aios.config.schema import CloudEndpoint, ModelSpec, OEMConfig
from aios.context import SkillContext
from aios.delivery.manager import ModelDelivery
from aios.device import DeviceMonitor
from aios.device.network import forced_offline
from aios.errors import (
    AIOSError,
    CancelledError,
    ConfigError,
    InvalidInputError,
    NoModelAvailableError,
    PluginError,
    UnknownSkillError,
)
from aios.memory.governor import MemoryGovernor
from aios.model_cache import CLOSE_WAIT_S, Loaded, ModelCache
from aios.plugin_manager import PluginSet, build_plugin_manager
from aios.record import ExecutionRecord
from aios.routing import strategies
from aios.routing.policy import RequestOptions, Route, RouteState, decide
from aios.selection import Choice, choose, choose_auxiliary, first_backend
from aios.skill import Skill
from aios.sources import model_dir
from aios.streams import drain
from aios.types import Capability, Tier

log = structlog.get_logger("aios")


@dataclass(frozen=True)
class Result:
    output: BaseModel
    record: ExecutionRecord

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": self.output.model_dump(mode="json"),
            "record": self.record.model_dump(mode="json"),
        }


@dataclass(frozen=True)
class StreamEvent:
    """A text delta while the skill runs, then one final event carrying the result."""

    delta: str | None = None
    result: Result | None = None
    step: dict[str, Any] | None = None  # an agent's step progress (started, finished)
    # The record as routed, before the first text (only from ``stream(on_routed=...)`` users
    # that make such events, as the service does): the request id, and the model chosen.
    routed: ExecutionRecord | None = None


class Orchestrator:
    def __init__(
        self,
        config: OEMConfig,
        *,
        config_path: Path | None = None,
        profile: str | None = None,
        strict: bool = False,
        plugins: PluginSet | None = None,
        extra_plugins: tuple[tuple[str, object], ...] = (),
        ledger: bool = True,
        device: DeviceMonitor | None = None,
    ) -> None:
        if not structlog.is_configured():
            # Embedded use without a logging setup: sane levels rather than structlog's
            # print-everything default (llama.cpp's native log alone is thousands of lines).
            from aios import log as aios_log

            aios_log.configure()
        self.config = config
        self.config_path = config_path
        self.base_dir = config_path.parent if config_path else Path.cwd()
        shown = str(config_path) if config_path else "config"
        self.plugins = plugins or build_plugin_manager(
            allow=config.plugins.allow,
            block=config.plugins.block,
            autoload=config.plugins.autoload,
            strict=strict,
            extra=extra_plugins,
        )
        problems = check_config(
            config,
            backends=self.plugins.backends,
            skills=self.plugins.skills,
            base_dir=self.base_dir,
            check_sources=False,  # a missing file fails that model's requests, not the device
            builders=self.plugins.builders,
        )
        try:
            self.profile = config.profile(profile)
        except KeyError:
            names = ", ".join(p.name for p in config.profiles)
            if profile:  # asked for by the caller (--profile), not named by the file
                problems.append(f"profile '{profile}' was asked for; the profiles are: {names}")
            else:
                problems.append(
                    f"device.profile: no profile named '{config.device.profile}' ({names})"
                )
        if problems:
            raise ConfigError(shown, problems)
        self._backends: dict[str, Backend] = {}
        self._probes: dict[str, Availability] = {}
        self._skills: dict[str, Skill] = {}
        self._lock = threading.Lock()
        # Device state (sensors read once per second, or a replayed trace) steers routing and
        # gives the memory governor its live MemAvailable.
        self.device = device or DeviceMonitor.from_config(config)
        self.governor = MemoryGovernor(
            self.profile.model_budget_mb,
            available_mb=self.device.mem_available_mb,
            min_free_mb=self.profile.min_free_mb,
        )
        cache_dir = model_dir(config.storage.model_dir, self.base_dir)
        # Downloads of url-sourced models, with progress the feature status reads.
        self.delivery = ModelDelivery(config.delivery, cache_dir)
        self.models = ModelCache(
            self.base_dir,
            cache_dir,
            self.governor,
            config.scheduling,
            builders=self.plugins.builders,
            delivery=self.delivery,
        )
        self._has_cloud = any(m.tier is Tier.cloud for m in config.models)
        self._difficulty_router: Any = None
        self._difficulty_problem: str | None = None  # logged once per distinct failure
        self.ledger: Ledger | None = Ledger(ledger_path()) if ledger else None

    @classmethod
    def from_file(cls, path: str | Path | None = None, **kwargs: Any) -> Orchestrator:
        config, resolved = load_config(path)
        return cls(config, config_path=resolved, **kwargs)

    # -- registries -----------------------------------------------------------------------
    def skill_class(self, name: str) -> type[Skill]:
        cls = self.plugins.skills.get(name)
        settings = self.config.skills.get(name)
        if cls is None or (settings is not None and not settings.enabled):
            known = sorted(self.skill_names())
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"available: {', '.join(known)}"
            why = "is disabled by the OEM config" if cls else "is not registered by any plugin"
            raise UnknownSkillError(f"skill '{name}' {why}", hint=hint)
        return cls

    def skill_names(self) -> list[str]:
        return [
            n
            for n in self.plugins.skills
            if self.config.skills.get(n) is None or self.config.skills[n].enabled
        ]

    def backend(self, name: str) -> Backend | None:
        with self._lock:
            if name not in self._backends:
                cls = self.plugins.backends.get(name)
                if cls is None:
                    return None
                backend = cls()
                backend.configure(self.config)
                self._backends[name] = backend
            return self._backends[name]

    def probe(self, name: str) -> Availability | None:
        if name in self._probes:
            return self._probes[name]
        backend = self.backend(name)
        if backend is None:
            return None
        try:
            avail = backend.probe()
        except Exception as exc:  # a buggy probe must not take the device down
            owner = self.plugins.owners.get(("backend", name), "?")
            avail = Availability(False, f"probe failed in plugin '{owner}': {exc}")
        self._probes[name] = avail
        return avail

    def loaded_model(self, choice: Choice, cancel: threading.Event | None = None) -> Loaded:
        """The chosen model loaded (or reused), with its gate and what loading it cost."""
        backend = self.backend(choice.backend)
        assert backend is not None
        loaded = self.models.get(choice.model, backend, cancel)
        if isinstance(loaded.handle, TensorModel):  # NPU backends vote for power per call
            loaded.handle.power_mode = self.device.snapshot().power_mode
        return loaded

    # -- explicit model control (operators, the service) ---------------------------------
    def load_model(self, model_id: str, *, pin: bool = False) -> Loaded:
        """Load a device model now, on its first usable backend, through the governor.

        Raises ``NoModelAvailableError`` when no backend can run it here and
        ``MemoryBudgetError`` when it does not fit.
        """
        spec = self._device_spec(model_id)
        record = ExecutionRecord(skill="models.load", status="explained")
        picked = first_backend(spec, self.profile, record, lambda name, _m: self.probe(name))
        if picked is None:
            why = "; ".join(d.reason for d in record.reasons if not d.accepted)
            raise NoModelAvailableError(f"model '{model_id}' cannot load here: {why}")
        loaded = self.loaded_model(Choice(model=spec, backend=picked[0]))
        if pin:
            self.models.pin(model_id)
        return loaded

    def unload_model(self, model_id: str) -> bool:
        """Unload a model after its running calls finish; False if it was not loaded."""
        self._device_spec(model_id)
        return self.models.unload(model_id)

    def pin_model(self, model_id: str, pinned: bool = True) -> bool:
        """Keep a loaded model resident (never evicted or shed); False if it is not loaded."""
        self._device_spec(model_id)
        return self.models.pin(model_id, pinned)

    def _device_spec(self, model_id: str) -> ModelSpec:
        try:
            spec = self.config.model(model_id)
        except KeyError:
            known = ", ".join(m.id for m in self.config.models)
            raise NoModelAvailableError(
                f"model '{model_id}' is not in the model matrix (models: {known})"
            ) from None
        if spec.tier is not Tier.device:
            raise NoModelAvailableError(f"model '{model_id}' is a cloud model: nothing to load")
        return spec

    # -- requests -------------------------------------------------------------------------
    def _check_requested_model(self, opts: RequestOptions) -> None:
        if opts.model is not None and opts.model not in {m.id for m in self.config.models}:
            raise NoModelAvailableError(f"model '{opts.model}' is not in the model matrix")

    def _validate(self, skill: type[Skill], inp: dict[str, Any] | BaseModel) -> BaseModel:
        if isinstance(inp, skill.Input):
            return inp
        data = inp.model_dump() if isinstance(inp, BaseModel) else inp
        if not isinstance(data, dict):
            raise InvalidInputError(
                skill.name, [f"expected a JSON object, got {type(data).__name__}"]
            )
        problem = _lone_surrogate(data, ())
        if problem:
            raise InvalidInputError(skill.name, [problem])
        try:
            if isinstance(data, JSONInput):
                # JSON types as sent: "2" is not a number, "no" is not false.
                return skill.Input.model_validate_json(json.dumps(data), strict=True)
            return skill.Input.model_validate(data)
        except ValidationError as exc:
            problems = [
                f"{format_loc(tuple(e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False)
            ]
            raise InvalidInputError(skill.name, problems) from None

    def _instance(self, cls: type[Skill]) -> Skill:
        with self._lock:
            if cls.name not in self._skills:
                self._skills[cls.name] = cls()
            return self._skills[cls.name]

    # -- routing --------------------------------------------------------------------------
    def route_state(self, cls: type[Skill], valid: BaseModel, opts: RequestOptions) -> RouteState:
        """The state snapshot the policy decides on (deterministic given the same snapshot)."""
        device = self.device.snapshot()
        offline = forced_offline() or device.online is False
        spent = self.ledger.spent_today() if self.ledger and self._has_cloud else 0.0
        difficulty, difficulty_error = self._difficulty(cls, valid)
        return RouteState(
            offline=offline,
            cloud_spent_today_cny=spent,
            difficulty=difficulty,
            difficulty_error=difficulty_error,
            device=device,
        )

    def _difficulty(self, cls: type[Skill], valid: BaseModel) -> tuple[float | None, str | None]:
        """The learned difficulty score, or why there is none although a router is configured.

        The router only ranks requests, so a broken one (its file replaced by junk after the
        config was checked, its encoder uninstalled) must not fail them: they are routed as if
        no router were configured, and the record says why.
        """
        path = self.config.routing.difficulty_router
        if not path or not self._has_cloud:
            return None, None
        try:
            text = cls.routing_text(valid)  # a plugin's override may fail like the router
            if not isinstance(text, str | None):
                raise TypeError(f"{cls.name}.routing_text gave {type(text).__name__}, not str")
            if not text or text.isspace():
                return None, None
            with self._lock:
                if self._difficulty_router is None:
                    from aios.routing.difficulty import DifficultyRouter

                    self._difficulty_router = DifficultyRouter.load(self._resolve(path))
            return float(self._difficulty_router.score(text)), None
        except Exception as exc:  # noqa: BLE001 - any failure of an optional ranker degrades
            problem = f"{type(exc).__name__}: {exc}"
            if problem != self._difficulty_problem:
                log.warning("routing.difficulty_router_failed", path=path, error=problem)
                self._difficulty_problem = problem
            return None, problem

    def _resolve(self, path: str) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    def _probe_for(
        self, record: ExecutionRecord
    ) -> Callable[[str, ModelSpec], Availability | None]:
        def probe(name: str, model: ModelSpec) -> Availability | None:
            # A first probe loads the backend's runtime: count it as load, not overhead.
            t0 = time.perf_counter()
            fresh = name not in self._probes
            avail = self.probe(name)
            if fresh:
                record.load_ms += (time.perf_counter() - t0) * 1000
            if avail is None or not avail.available:
                return avail
            backend = self.backend(name)
            why_not = backend.health(model) if backend else None
            return Availability(False, why_not) if why_not else avail

        return probe

    def auxiliary_model(
        self, skill: str, capability: Capability, record: ExecutionRecord
    ) -> Choice | None:
        """A device model with ``capability`` for a skill that needs one beside its own."""
        cls = self.skill_class(skill)
        return choose_auxiliary(
            self.config, self.profile, cls, capability, record, self._probe_for(record)
        )

    def choose_model(
        self, cls: type[Skill], record: ExecutionRecord, route: Route, requested: str | None
    ) -> Choice | None:
        choice = choose(
            self.config, self.profile, cls, record, self._probe_for(record), route, requested
        )
        if choice is not None:
            record.model, record.backend = choice.model.id, choice.backend
            record.tier = choice.model.tier
        return choice

    # -- requests -------------------------------------------------------------------------
    def _execute(
        self,
        name: str,
        inp: dict[str, Any] | BaseModel,
        opts: RequestOptions,
        cancel: threading.Event | None,
        parent: ExecutionRecord | None,
        streaming: bool,
        on_progress: Callable[[int, int, str], None] | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        on_routed: Callable[[ExecutionRecord], None] | None = None,
    ) -> Generator[str, None, Result]:
        started = time.perf_counter()
        record = ExecutionRecord(skill=name, priority=opts.priority, app=opts.app)
        cancel = cancel or threading.Event()
        ctx: SkillContext | None = None
        try:
            cls = self.skill_class(name)
            record.kind = cls.kind
            valid = self._validate(cls, inp)
            self._check_requested_model(opts)
            skill = self._instance(cls)
            if not cls.capabilities:
                record.decide("model", "skill needs no model", None)
                ctx = SkillContext(self, record, None, cancel, started, on_progress, opts, on_event)
                output = yield from skill.stream(valid, ctx)
            else:
                route = decide(self.config, cls, opts, self.route_state(cls, valid, opts))
                route.apply(record)
                choice = self.choose_model(cls, record, route, opts.model)
                if on_routed is not None:
                    on_routed(record)
                ctx = SkillContext(
                    self, record, choice, cancel, started, on_progress, opts, on_event
                )
                if choice is None:
                    output = strategies.no_model(self, cls, skill, valid, ctx, opts)
                elif route.cascade and choice.model.tier is Tier.device:
                    output = yield from strategies.cascade(self, cls, skill, valid, ctx, route)
                else:
                    output = yield from strategies.run_with_fallback(
                        self, cls, skill, valid, ctx, route, streaming
                    )
            if not isinstance(output, cls.Output):
                owner = self.plugins.owners.get(("skill", name), "?")
                raise PluginError(
                    f"skill '{name}' (plugin '{owner}') returned {type(output).__name__}, "
                    f"not its Output model"
                )
        except AIOSError as exc:
            record.status = "cancelled" if isinstance(exc, CancelledError) else "error"
            record.error = str(exc)
            self._finish(record, started, ctx, parent)
            raise
        except Exception as exc:
            # A bug in a skill plugin: report it by name, keep serving.
            owner = self.plugins.owners.get(("skill", name), "?")
            record.status = "error"
            record.error = f"skill '{name}' (plugin '{owner}') failed: {type(exc).__name__}: {exc}"
            self._finish(record, started, ctx, parent, exc_info=True)
            raise PluginError(record.error) from exc
        self._finish(record, started, ctx, parent)
        return Result(output=output, record=record)

    def _finish(
        self,
        record: ExecutionRecord,
        started: float,
        ctx: SkillContext | None,
        parent: ExecutionRecord | None,
        exc_info: bool = False,
    ) -> None:
        record.latency_ms = (time.perf_counter() - started) * 1000
        inference = ctx.inference_ms if ctx else 0.0
        nested = sum(step.latency_ms for step in record.steps)  # an agent's steps
        record.overhead_ms = max(
            0.0, record.latency_ms - nested - inference - record.load_ms - record.queue_ms
        )
        if ctx is not None:
            record.cost_cny = round(record.cost_cny, 6)
        if parent is not None:
            parent.steps.append(record)
            parent.tokens_in += record.tokens_in
            parent.tokens_out += record.tokens_out
            parent.cost_cny += record.cost_cny
        else:
            record.cloud_equivalent_cny = round(self._cloud_equivalent(record), 6)
            if self.ledger is not None:
                self.ledger.add(record, record.cloud_equivalent_cny)
        event = log.info if record.status == "ok" else log.warning
        event("aios.request", **record.model_dump(mode="json"))
        if exc_info:  # the plugin author's traceback, for operators, never on the user's screen
            log.debug("aios.request.traceback", request_id=record.request_id, exc_info=True)

    def _cloud_equivalent(self, record: ExecutionRecord) -> float:
        """What this request would have cost had it run in the cloud."""
        if record.tier is Tier.cloud:
            return record.cost_cny
        if not self.config.cloud.endpoints:
            return CloudEndpoint.model_fields["cost_per_call_cny"].default  # type: ignore
        return self.config.cloud.endpoints[0].call_cost(record.tokens_in, record.tokens_out)

    def invoke(
        self,
        skill: str,
        inp: dict[str, Any] | BaseModel,
        *,
        model: str | None = None,
        options: RequestOptions | None = None,
        cancel: threading.Event | None = None,
        parent: ExecutionRecord | None = None,
        on_progress: Callable[[int, int, str], None] | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
    ) -> Result:
        """Run a skill to completion. ``on_progress(done, total, what)`` hears long requests;
        ``on_event(dict)`` hears an agent's steps."""
        opts = options or RequestOptions(model=model)
        return drain(
            self._execute(
                skill,
                inp,
                opts,
                cancel,
                parent,
                streaming=False,
                on_progress=on_progress,
                on_event=on_event,
            )
        )

    def run_nested(
        self,
        skill: str,
        inp: dict[str, Any] | BaseModel,
        *,
        options: RequestOptions,
        cancel: threading.Event,
        parent: ExecutionRecord,
    ) -> Generator[str, None, Result]:
        """An agent's step, streamed: text deltas, then the result; its record nests."""
        return self._execute(skill, inp, options, cancel, parent, streaming=True)

    def stream(
        self,
        skill: str,
        inp: dict[str, Any] | BaseModel,
        *,
        model: str | None = None,
        options: RequestOptions | None = None,
        cancel: threading.Event | None = None,
        on_routed: Callable[[ExecutionRecord], None] | None = None,
    ) -> Iterator[StreamEvent]:
        """Text deltas, an agent's step events, then one event with the result.

        ``on_routed`` is called with the record once the request is routed (model chosen),
        before any text: the service tells the client where the request runs from it.
        """
        opts = options or RequestOptions(model=model)
        # Step events are reported from inside the generator; an agent yields an empty delta
        # right after each, so they go out at once rather than with the next text.
        steps: list[dict[str, Any]] = []
        gen = self._execute(
            skill,
            inp,
            opts,
            cancel,
            None,
            streaming=True,
            on_event=steps.append,
            on_routed=on_routed,
        )
        while True:
            try:
                delta = next(gen)
            except StopIteration as stop:
                yield from (StreamEvent(step=s) for s in steps)
                yield StreamEvent(result=stop.value)
                return
            while steps:
                yield StreamEvent(step=steps.pop(0))
            if delta:
                yield StreamEvent(delta=delta)

    def explain(
        self, skill: str, inp: dict[str, Any] | BaseModel, options: RequestOptions | None = None
    ) -> ExecutionRecord:
        """The routing decision for a request, without loading a model or running anything."""
        opts = options or RequestOptions()
        record = ExecutionRecord(
            skill=skill, status="explained", priority=opts.priority, app=opts.app
        )
        cls = self.skill_class(skill)
        record.kind = cls.kind
        valid = self._validate(cls, inp)
        self._check_requested_model(opts)
        if not cls.capabilities:
            record.decide("model", "skill needs no model", None)
            return record
        state = self.route_state(cls, valid, opts)
        route = decide(self.config, cls, opts, state)
        route.apply(record)
        if self.choose_model(cls, record, route, opts.model) is None:
            record.decide("fallback", "no model can serve it: the skill's fallback would answer")
        if route.cascade and record.tier is Tier.device:
            record.decide("tier", "cascade: escalates to the cloud if the device is unsure")
        return record

    def close(self, timeout_s: float = CLOSE_WAIT_S) -> None:
        """Close skills, models (after their running calls, waiting at most ``timeout_s`` per
        model) and the ledger."""
        with self._lock:
            skills, self._skills = list(self._skills.values()), {}
        for skill in skills:
            try:
                skill.close()
            except Exception:  # a plugin's cleanup bug must not stop the shutdown
                owner = self.plugins.owners.get(("skill", skill.name), "?")
                log.warning("skill.close_failed", skill=skill.name, plugin=owner, exc_info=True)
        self.models.close(timeout_s)
        if self.ledger is not None:
            self.ledger.close()
            self.ledger = None


class JSONInput(dict):  # type: ignore[type-arg]
    """A skill input parsed from a JSON body (the service): validated with JSON's own types.

    The CLI's ``--FIELD VALUE`` options are strings by nature and are converted; a JSON client
    that sends ``"max_tokens": "2"`` or ``"sensitive": "no"`` has a bug worth a 422, and
    silently reading "no" as false could send private text to the cloud.
    """


def _lone_surrogate(value: Any, loc: tuple[Any, ...]) -> str | None:
    """Where a string holds half a UTF-16 pair (JSON's ``"\\ud800"``): no model, tokenizer or
    file can take it, so it is the caller's mistake, named here rather than failing later."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            where = format_loc(loc) or "input"
            return f"{where}: lone surrogate at character {exc.start}; send valid Unicode text"
        return None
    items: Any = ()
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    for key, item in items:
        found = _lone_surrogate(key, loc) if isinstance(key, str) else None
        found = found or _lone_surrogate(item, (*loc, key))
        if found:
            return found
    return None
