"""Writing files so that readers only ever see the old content or the complete new content."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replaced_atomically(target: str | Path) -> Iterator[Path]:
    """A private temporary path beside ``target``, renamed onto it only if the block succeeds.

    Beside, not in a temp directory, because ``os.replace`` is atomic only within one file
    system. A crash or an error leaves ``target`` as it was and removes the temporary file.
    """
    target = Path(target)
    tmp = target.with_name(f".{target.name}.{os.getpid()}-{threading.get_ident()}.partial")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def unreadable(path: str | Path, exc: OSError) -> str:
    """One clear line for why ``path`` could not be read, to put in the caller's own error."""
    if isinstance(exc, FileNotFoundError):
        return f"{path}: file not found"
    if isinstance(exc, IsADirectoryError):
        return f"{path}: is a directory, not a file"
    return f"{path}: cannot read ({exc.strerror or exc})"
