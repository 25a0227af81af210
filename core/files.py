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


def unreadable(path: str | Path, exc: OSError) -> str:
    """One clear line for why ``path`` could not be read, to put in the caller's own error."""
    if isinstance(exc, FileNotFoundError):
        return f"{path}: file not found"
    if isinstance(exc, IsADirectoryError):
        return f"{path}: is a directory, not a file"
    return f"{path}: cannot read ({exc.strerror or exc})"


MAX_TEXT_BYTES = 64 * 1024 * 1024


def read_text_file(path: str | Path, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """A user-named text file, whole: UTF-8 (a byte-order mark is dropped), at most ``max_bytes``.

    Only regular files: ``/dev/zero`` would be read until memory runs out and a FIFO would
    block forever. Raises ``OSError`` when the file cannot be read and ``ValueError`` (with
    a message meant for the user) when it is not such a file.
    """
    path = Path(path)
    # stat before open: opening a FIFO for reading blocks until some writer opens it.
    if not stat.S_ISREG(path.stat().st_mode) and not path.is_dir():
        raise ValueError("not a regular file")
    with path.open("rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ValueError("not a regular file")
        if st.st_size > max_bytes:
            raise ValueError(f"{st.st_size:,} bytes is over the {max_bytes:,}-byte limit")
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:  # grew while being read
        raise ValueError(f"over the {max_bytes:,}-byte limit")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text (byte {exc.start})") from None
