"""Where each user's index lives: one SQLite file per user profile."""

from __future__ import annotations

import re
from pathlib import Path

from aios.config.schema import OEMConfig
from aios.errors import AIOSError
from aios.sources import aios_home

# A user name becomes a file name: no separators, no leading dot, so no way out of the folder.
USER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


def index_dir(config: OEMConfig, base_dir: Path) -> Path:
    configured = config.index.dir
    if configured:
        p = Path(configured).expanduser()
        return p if p.is_absolute() else base_dir / p
    return aios_home() / "index"


def index_path(config: OEMConfig, base_dir: Path, user: str) -> Path:
    if not re.match(USER_PATTERN, user):
        raise AIOSError(
            f"user {user!r} is not a profile name: letters, digits, '_', '.', '-', at most 64"
        )
    return index_dir(config, base_dir) / f"{user}.sqlite"
