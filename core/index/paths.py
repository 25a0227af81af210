"""Where each user's index lives: one SQLite file per user profile."""

from __future__ import annotations

from pathlib import Path

from aios.config.schema import OEMConfig
from aios.sources import aios_home


def index_dir(config: OEMConfig, base_dir: Path) -> Path:
    configured = config.index.dir
    if configured:
        p = Path(configured).expanduser()
        return p if p.is_absolute() else base_dir / p
    return aios_home() / "index"


def index_path(config: OEMConfig, base_dir: Path, user: str) -> Path:
    return index_dir(config, base_dir) / f"{user}.sqlite"
