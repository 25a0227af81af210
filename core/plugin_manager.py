"""Build the plugin manager and collect what plugins register, one plugin at a time.

Nothing happens at import: ``load_plugins`` builds a fresh pluggy manager per call. A plugin that
fails to import or raises while registering is logged with its name and skipped (its partial
registrations are rolled back), unless ``strict`` is set, as in tests and CI.
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

import pluggy
import structlog

from aios import hookspecs
from aios.backend import Backend
from aios.builders import ModelBuilder, builder_problems
from aios.config.schema import ModelFormat
from aios.errors import PluginError
from aios.skill import Skill, contract_problems

ENTRY_POINT_GROUP = "aios"

# Built-ins register through the very hooks third-party plugins use.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "aios.backends.default_llama_cpp",
    "aios.backends.default_onnxruntime",
    "aios.backends.default_qnn",
    "aios.backends.default_neuropilot",
    "aios.backends.default_openai",
    "aios.plugins.default_summarize",
    "aios.plugins.default_generate",
    "aios.plugins.default_chat",
    "aios.plugins.default_vision",
    "aios.plugins.default_image_generate",
    "aios.plugins.default_search",
    "aios.plugins.default_calories",
    "aios.plugins.default_plan",
    "aios.plugins.default_agents",
)

log = structlog.get_logger("aios.plugins")


@dataclass(frozen=True)
class PluginInfo:
    name: str
    module: str
    builtin: bool
    distribution: str | None = None
    version: str | None = None


@dataclass(frozen=True)
class PluginFailure:
    plugin: str
    stage: str  # "import" or the hook that raised
    error: str


@dataclass
class PluginSet:
    """What the plugins registered, who registered it, and who failed."""

    manager: pluggy.PluginManager
    plugins: list[PluginInfo] = field(default_factory=list)
    skills: dict[str, type[Skill]] = field(default_factory=dict)
    backends: dict[str, type[Backend]] = field(default_factory=dict)
    builders: dict[str, type[ModelBuilder]] = field(default_factory=dict)
    owners: dict[tuple[str, str], str] = field(default_factory=dict)  # (kind, name) -> plugin
    failures: list[PluginFailure] = field(default_factory=list)


def _backend_problems(cls: Any) -> list[str]:
    if not isinstance(cls, type) or not issubclass(cls, Backend):
        return [f"{cls!r} is not a subclass of aios.Backend"]
    problems = []
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name or not name.replace("_", "").isalnum():
        problems.append(f"name {name!r} must be a lower-case identifier")
    fmts = getattr(cls, "formats", None)
    if not fmts or not all(isinstance(f, ModelFormat) for f in fmts):
        problems.append("formats must be a non-empty set of aios ModelFormat")
    if not isinstance(getattr(cls, "description", None), str):
        problems.append("description must be a string")
    return problems


# register hook -> (kind, the PluginSet field it fills, the validator of what it is handed).
REGISTER_HOOKS: dict[str, tuple[str, str, Callable[[Any], list[str]]]] = {
    "register_backends": ("backend", "backends", _backend_problems),
    "register_skills": ("skill", "skills", contract_problems),
    "register_model_builders": ("builder", "builders", builder_problems),
}


def _returning(obj: object) -> Callable[[], object]:
    return lambda: obj


def _plugin_name(pm: pluggy.PluginManager, plugin: object) -> str:
    return pm.get_name(plugin) or str(getattr(plugin, "__name__", repr(plugin)))


def _fail(ps: PluginSet, strict: bool, name: str, stage: str, exc: BaseException) -> None:
    error = f"{type(exc).__name__}: {exc}"
    if strict:
        raise PluginError(f"plugin '{name}' failed during {stage}: {error}") from exc
    ps.failures.append(PluginFailure(plugin=name, stage=stage, error=error))
    log.error("plugin.skipped", plugin=name, stage=stage, error=error)


def _discover(
    allow: Iterable[str] | None, block: Iterable[str]
) -> list[tuple[str, Callable[[], ModuleType], PluginInfo]]:
    allowed = set(allow) if allow is not None else None
    blocked = set(block)
    found = []
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if ep.name in blocked or (allowed is not None and ep.name not in allowed):
            log.info("plugin.not_loaded", plugin=ep.name, why="blocked or not in allowlist")
            continue
        dist = ep.dist
        info = PluginInfo(
            name=ep.name,
            module=ep.value,
            builtin=False,
            distribution=dist.metadata["Name"] if dist else None,
            version=dist.version if dist else None,
        )
        found.append((ep.name, ep.load, info))
    return found


def build_plugin_manager(
    *,
    allow: Iterable[str] | None = None,
    block: Iterable[str] = (),
    autoload: bool = True,
    strict: bool = False,
    extra: Iterable[tuple[str, object]] = (),
) -> PluginSet:
    """A fresh manager with the built-ins, allowed entry-point plugins and ``extra`` objects.

    ``extra`` takes (name, plugin object) pairs; tests use it to add a plugin in-process.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    if os.environ.get("AIOS_TRACE_PLUGINS"):
        trace = structlog.get_logger("aios.plugins.trace")
        pm.add_hookcall_monitoring(
            lambda hook, impls, kw: trace.info("hook.call", hook=hook, plugins=len(impls)),
            lambda outcome, hook, impls, kw: trace.info("hook.done", hook=hook),
        )
    ps = PluginSet(manager=pm)
    blocked = set(block)

    candidates: list[tuple[str, Callable[[], Any], PluginInfo]] = [
        (mod, functools.partial(importlib.import_module, mod), PluginInfo(mod, mod, True))
        for mod in DEFAULT_PLUGINS
        if mod not in blocked
    ]
    if autoload:
        candidates += _discover(allow, blocked)
    candidates += [(n, _returning(o), PluginInfo(n, repr(o), False)) for n, o in extra]

    for name, loader, info in candidates:
        try:
            plugin = loader()
            pm.register(plugin, name=name)
        except Exception as exc:
            _fail(ps, strict, name, "import", exc)
            continue
        ps.plugins.append(info)
    _collect(ps, strict)
    return ps


def _collect(ps: PluginSet, strict: bool) -> None:
    for info in list(ps.plugins):
        _collect_one(ps, info, strict)


def _collect_one(ps: PluginSet, info: PluginInfo, strict: bool) -> None:
    """Run one plugin's register hooks; commit its registrations only if all of them succeed."""
    pm = ps.manager
    plugin = pm.get_plugin(info.name)
    others = [p for p in pm.get_plugins() if p is not plugin]
    staged: dict[str, dict[str, Any]] = {kind: {} for kind, _, _ in REGISTER_HOOKS.values()}
    targets: dict[str, dict[str, Any]] = {
        kind: getattr(ps, attr) for kind, attr, _ in REGISTER_HOOKS.values()
    }

    def make_register(kind: str, problems_of: Callable[[Any], list[str]]) -> Callable:
        def register(item: Any) -> None:
            problems = problems_of(item)
            if problems:
                raise PluginError(f"invalid {kind} {item!r}: " + "; ".join(problems))
            name = item.name
            if name in targets[kind] or name in staged[kind]:
                owner = ps.owners.get((kind, name), info.name)
                raise PluginError(f"{kind} name '{name}' is already registered by plugin '{owner}'")
            staged[kind][name] = item

        return register

    try:
        for hook, (kind, _, problems_of) in REGISTER_HOOKS.items():
            caller = pm.subset_hook_caller(hook, remove_plugins=others)
            caller(register=make_register(kind, problems_of))
    except Exception as exc:
        _fail(ps, strict, info.name, "registration", exc)
        pm.unregister(plugin)
        ps.plugins.remove(info)
        return
    for kind, items in staged.items():
        for name, item in items.items():
            targets[kind][name] = item
            ps.owners[(kind, name)] = info.name
