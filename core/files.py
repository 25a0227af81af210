"""Files at the edge: reading the ones users name, and replacing ours so readers never see half."""

from __future__ import annotations

import os
import stat
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


class UnreadableFileError(ValueError):
    """A file the user named that cannot be used; the message says why, without the path,
    so each caller puts the path (and its own error type) in front."""


def why_unreadable(exc: OSError) -> str:
    """One clear phrase for an ``OSError`` met while reading a user's file."""
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, IsADirectoryError):
        return "is a directory, not a file"
    return f"cannot read ({exc.strerror or exc})"


MAX_TEXT_BYTES = 64 * 1024 * 1024


def read_text_file(path: str | Path, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """A user-named text file, whole: UTF-8 (a byte-order mark is dropped), at most ``max_bytes``.

    Only regular files: ``/dev/zero`` would be read until memory runs out and a FIFO would
    block forever. Every problem, an ``OSError`` included, is an ``UnreadableFileError``.
    """
    try:
        data = _read_regular(Path(path), max_bytes)
    except OSError as exc:
        raise UnreadableFileError(why_unreadable(exc)) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableFileError(f"not UTF-8 text (byte {exc.start})") from None


def _read_regular(path: Path, max_bytes: int) -> bytes:
    # stat before open: opening a FIFO for reading blocks until some writer opens it.
    if not stat.S_ISREG(path.stat().st_mode) and not path.is_dir():
        raise UnreadableFileError("not a regular file")
    with path.open("rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > max_bytes:
            raise UnreadableFileError(f"{size:,} bytes is over the {max_bytes:,}-byte limit")
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:  # grew while being read
        raise UnreadableFileError(f"over the {max_bytes:,}-byte limit")
    return data
