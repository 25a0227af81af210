"""Read an OEM config file into an ``OEMConfig``, turning every problem into a path-named line."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from aios.config.schema import OEMConfig
from aios.errors import ConfigError
from aios.files import read_text_file

DEFAULT_CONFIG_NAME = "reference.toml"


def default_config_path() -> Path:
    """The embedded reference config (CPU only, shipped models)."""
    return Path(str(resources.files("aios.oem_configs").joinpath(DEFAULT_CONFIG_NAME)))


def format_loc(loc: tuple[Any, ...]) -> str:
    """``("models", 2, "memory_mb")`` -> ``models[2].memory_mb``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(root)"


def _describe(err: dict[str, Any]) -> str:
    loc = err["loc"]
    # pydantic puts the failing variant's class name in the path of model_validator errors and
    # union members; the config author never wrote those names.
    loc = tuple(p for p in loc if not (isinstance(p, str) and p[:1].isupper()))
    path = format_loc(loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        return f"{path}: unknown key"
    if kind == "missing":
        return f"{path}: required key is missing"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    got = err.get("input")
    if kind not in ("model_type", "dict_type") and not isinstance(got, dict | list):
        return f"{path}: {msg} (got {got!r})"
    return f"{path}: {msg}"


def validation_problems(exc: ValidationError) -> list[str]:
    return [_describe(e) for e in exc.errors(include_url=False)]  # type: ignore[arg-type]


def parse_config(data: dict[str, Any], source: str) -> OEMConfig:
    try:
        return OEMConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, validation_problems(exc)) from None


# A model matrix with hundreds of entries is tens of kilobytes; beyond this it is not a config.
_MAX_CONFIG_BYTES = 4 * 1024 * 1024


def read_toml(path: Path) -> dict[str, Any]:
    try:
        text = read_text_file(path, max_bytes=_MAX_CONFIG_BYTES)
    except ValueError as exc:
        raise ConfigError(str(path), [str(exc)]) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), [f"TOML syntax error: {exc}"]) from None


def load_config(path: str | Path | None = None) -> tuple[OEMConfig, Path]:
    """Load and validate a config; returns it with its resolved path.

    Only the file's own rules are checked here; ``aios.config.checks`` adds the checks that
    need the plugins and the file system.
    """
    if path is None:
        cfg_path, shown = default_config_path(), f"{DEFAULT_CONFIG_NAME} (embedded default)"
    else:
        cfg_path, shown = Path(path).expanduser(), str(path)
    data = read_toml(cfg_path)
    return parse_config(data, shown), cfg_path.resolve()
