"""Cross-checks a valid-looking config must also pass: references, budgets, plugins, files.

Each problem is one line that starts with the field path, e.g.
``models[2].backends[0]: no plugin registers backend 'qnnx'``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path

from aios.config.schema import OEMConfig
from aios.sources import model_dir, source_problem
from aios.types import Tier


def _duplicates(names: list[str]) -> set[str]:
    return {n for n, c in Counter(names).items() if c > 1}


def check_config(
    cfg: OEMConfig,
    *,
    backends: Mapping[str, object],
    skills: Mapping[str, object],
    base_dir: Path,
    check_sources: bool = True,
    builders: Mapping[str, object] | None = None,
) -> list[str]:
    """Every cross-reference problem in ``cfg``; empty when the config is usable.

    ``backends`` maps registered backend names to their classes (with a ``formats`` attribute);
    ``skills`` maps registered skill names; ``builders``, when given, registered model builder
    names (a model whose source names another is a problem).
    """
    problems: list[str] = []
    add = problems.append

    profile_names = [p.name for p in cfg.profiles]
    for dup in _duplicates(profile_names):
        add(f"profiles: profile name '{dup}' is used twice")
    model_ids = [m.id for m in cfg.models]
    for dup in _duplicates(model_ids):
        add(f"models: model id '{dup}' is used twice")
    endpoint_names = [e.name for e in cfg.cloud.endpoints]
    for dup in _duplicates(endpoint_names):
        add(f"cloud.endpoints: endpoint name '{dup}' is used twice")

    profiles = {p.name: p for p in cfg.profiles}
    if cfg.device.profile not in profiles:
        add(f"device.profile: no profile named '{cfg.device.profile}' (have {profile_names})")

    for i, prof in enumerate(cfg.profiles):
        for j, b in enumerate(prof.backends):
            if b not in backends:
                add(f"profiles[{i}].backends[{j}]: no plugin registers backend '{b}'")

    cache = model_dir(cfg.storage.model_dir, base_dir)
    for i, m in enumerate(cfg.models):
        where = f"models[{i}]"
        for j, pname in enumerate(m.profiles):
            if pname not in profiles:
                add(f"{where}.profiles[{j}]: no profile named '{pname}'")
        if m.prompt_format and m.prompt_format not in cfg.prompt_formats:
            add(f"{where}.prompt_format: no prompt format named '{m.prompt_format}'")
        for j, b in enumerate(m.backends):
            cls = backends.get(b)
            if cls is None:
                add(f"{where}.backends[{j}]: no plugin registers backend '{b}'")
            elif m.format not in getattr(cls, "formats", ()):
                add(f"{where}.backends[{j}]: backend '{b}' cannot run {m.format.value} models")
        if m.tier is Tier.cloud:
            if m.endpoint not in endpoint_names:
                add(f"{where}.endpoint: no cloud endpoint named '{m.endpoint}'")
            continue
        for pname in m.profiles:
            prof = profiles.get(pname)
            if prof and m.memory_mb > prof.model_budget_mb:
                add(
                    f"{where}.memory_mb: {m.memory_mb} MB does not fit profile '{pname}' "
                    f"(budget {prof.model_budget_mb} MB = ram {prof.ram_mb} - os reserve "
                    f"{prof.os_reserve_mb} - keep-alive reserve {prof.keepalive_reserve_mb})"
                )
        builder = m.source.builder if m.source is not None else None
        if m.source is not None and m.source.url:
            # Like a build, a download is a deployment step (`aios models pull`): a model not
            # downloaded yet is fine here and says how to get it when it is asked for.
            if "://" not in m.source.url and not cfg.delivery.base_url:
                add(
                    f"{where}.source.url: relative url '{m.source.url}' needs "
                    "`delivery.base_url` (the OEM model server)"
                )
        elif builder:
            # Building is a deployment step (`aios models build`), not a property of the config:
            # a model not built yet fails its own requests, saying how to build it.
            if builders is not None and builder not in builders:
                known = ", ".join(sorted(builders)) or "none"
                add(
                    f"{where}.source.builder: no plugin registers model builder '{builder}' "
                    f"(registered: {known})"
                )
        elif check_sources and m.source is not None:
            problem = source_problem(m.source, base_dir, cache, builders)
            if problem:
                add(f"{where}.source: {problem}")

    for name, settings in cfg.skills.items():
        if name not in skills:
            add(f"skills.{name}: no plugin registers skill '{name}'")
        for j, mid in enumerate(settings.models):
            if mid not in model_ids:
                add(f"skills.{name}.models[{j}]: no model with id '{mid}'")

    router = cfg.routing.difficulty_router
    if router and check_sources:
        p = Path(router).expanduser()
        p = p if p.is_absolute() else base_dir / p
        if not p.is_file():
            add(f"routing.difficulty_router: file not found: {p}")
        else:
            problem = _router_problem(p)
            if problem:
                add(f"routing.difficulty_router: {p}: {problem}")
    return problems


def _router_problem(path: Path) -> str | None:
    """Why the artifact cannot rank requests; numpy only, so checking a config stays cheap."""
    from aios.files import why_unreadable
    from aios.routing.difficulty import DifficultyRouter, UseEncoder

    try:
        router = DifficultyRouter.load(path)
    except OSError as exc:
        return why_unreadable(exc)
    except ValueError as exc:
        return str(exc)
    if router.uses_embeddings:
        return UseEncoder.missing()
    return None
