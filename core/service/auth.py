"""Per-app credentials and permissions.

Apps come from the config's ``[[apps]]`` and from the apps file ``aios apps add`` writes
(``$AIOS_HOME/apps.toml``); the config wins when both name the same id. Only sha256 hashes of
tokens are kept; a bearer token is hashed and compared in constant time against every app.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from pydantic import ValidationError

from aios.config.loader import read_toml, validation_problems
from aios.config.schema import AppSpec, OEMConfig
from aios.errors import ConfigError
from aios.service.errors import ForbiddenError, UnauthorizedError
from aios.skill import Skill
from aios.sources import aios_home
from aios.types import Priority

TOKEN_BYTES = 32


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return "aios_" + secrets.token_urlsafe(TOKEN_BYTES)


def apps_file_path(config: OEMConfig, base_dir: Path) -> Path:
    configured = config.service.apps_file
    if not configured:
        return aios_home() / "apps.toml"
    p = Path(configured).expanduser()
    return p if p.is_absolute() else base_dir / p


def read_apps_file(path: Path) -> list[AppSpec]:
    """The apps of an apps file (none when it does not exist); every problem is reported."""
    if not path.exists():
        return []
    data = read_toml(path)
    unknown = sorted(set(data) - {"apps"})
    problems = [f"{k}: unknown key (an apps file holds only [[apps]])" for k in unknown]
    apps: list[AppSpec] = []
    for i, raw in enumerate(data.get("apps", [])):
        try:
            apps.append(AppSpec.model_validate(raw))
        except ValidationError as exc:
            problems += [f"apps[{i}].{p}" for p in validation_problems(exc)]
    if problems:
        raise ConfigError(str(path), problems)
    return apps


def append_app(path: Path, app: AppSpec) -> None:
    """Append one app to the apps file (created 0600: it names who may call the service)."""
    existing = {a.id for a in read_apps_file(path)}
    if app.id in existing:
        raise ConfigError(str(path), [f"an app named '{app.id}' already exists"])
    path.parent.mkdir(parents=True, exist_ok=True)
    skills = ", ".join(f'"{s}"' for s in app.skills)
    classes = ", ".join(f'"{d.value}"' for d in app.data_classes)
    entry = (
        f'\n[[apps]]\nid = "{app.id}"\ntoken_sha256 = "{app.token_sha256}"\n'
        f"skills = [{skills}]\ndata_classes = [{classes}]\n"
        f'priority = "{app.priority.value}"\nrequests_per_minute = {app.requests_per_minute}\n'
        f"max_concurrent = {app.max_concurrent}\n"
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as f:
        f.write(entry)


class AppRegistry:
    def __init__(self, apps: Iterable[AppSpec]) -> None:
        self.apps: dict[str, AppSpec] = {}
        for app in apps:
            self.apps.setdefault(app.id, app)  # first wins: the config's come first

    @classmethod
    def load(cls, config: OEMConfig, base_dir: Path) -> AppRegistry:
        dupes = sorted({a.id for a in config.apps if [b.id for b in config.apps].count(a.id) > 1})
        if dupes:
            raise ConfigError("config", [f"apps: id '{d}' is given twice" for d in dupes])
        return cls([*config.apps, *read_apps_file(apps_file_path(config, base_dir))])

    def authenticate(self, authorization: str | None) -> AppSpec:
        if not authorization:
            raise UnauthorizedError(
                "missing credentials", hint="send 'Authorization: Bearer <app token>'"
            )
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise UnauthorizedError(
                "credentials must be a bearer token", hint="'Authorization: Bearer <app token>'"
            )
        digest = hash_token(token.strip())
        found: AppSpec | None = None
        for app in self.apps.values():  # no early exit: the time does not depend on the match
            if hmac.compare_digest(digest, app.token_sha256):
                found = app
        if found is None:
            raise UnauthorizedError("unknown or revoked token")
        return found


def check_skill(app: AppSpec, skill: type[Skill]) -> None:
    """403 unless the app may call this skill with the data classes it handles."""
    if "*" not in app.skills and skill.name not in app.skills:
        raise ForbiddenError(
            f"app '{app.id}' may not call skill '{skill.name}'",
            hint=f"allowed: {', '.join(app.skills)}",
        )
    missing = sorted(d.value for d in skill.data_classes if d not in app.data_classes)
    if missing:
        raise ForbiddenError(
            f"app '{app.id}' may not send data of class {', '.join(missing)} "
            f"(skill '{skill.name}' handles it)",
            hint="add the data classes to the app's `data_classes`",
        )


def effective_priority(app: AppSpec, asked: str | None) -> Priority:
    """The app's priority, or background when asked; a request can never raise it."""
    if asked is None or not asked.strip():
        return app.priority
    try:
        wanted = Priority(asked.strip().lower())
    except ValueError:
        from aios.service.errors import BadRequestError

        raise BadRequestError(
            f"X-AIOS-Priority must be foreground or background, not '{asked}'"
        ) from None
    if app.priority is Priority.background:
        return Priority.background
    return wanted
