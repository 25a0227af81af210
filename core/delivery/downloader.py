"""Fetch one model file over HTTP into the model dir: resumable, sha256-verified, atomic.

The bytes go to ``<file>.partial`` beside the target. A new attempt (after a cut connection, a
timeout, a server error, or a restart of the process) asks for the rest with ``Range: bytes=N-``;
a server that ignores the range (200) is read from the start again. Only once the sha256 over
the whole file matches is the partial renamed onto the target (``os.replace``), so a file under
the target name is always complete and verified. Free disk space is checked before any byte is
written.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import threading
from pathlib import Path
from typing import Any

import httpx
import structlog

from aios.config.schema import DeliverySettings
from aios.delivery.progress import Progress
from aios.errors import CancelledError, DeliveryError

log = structlog.get_logger("aios.delivery")

MIB = 1 << 20
_MAX_BACKOFF_S = 60.0
_CONTENT_RANGE = re.compile(r"^bytes\s+(\d+)-(\d+)/(\d+|\*)$")


class _Retry(Exception):
    """An attempt failed in a way another attempt may fix (cut, timeout, server error)."""


class _State:
    """What is on disk in the partial: its size and the sha256 over it so far."""

    def __init__(self, partial: Path) -> None:
        self.hasher, self.have = _hash_file(partial)

    def reset(self) -> None:
        self.hasher, self.have = hashlib.sha256(), 0


def partial_path(target: Path) -> Path:
    return target.with_name(target.name + ".partial")


def check_disk(folder: Path, need_bytes: int, min_free_mb: int) -> None:
    """Refuse a download of ``need_bytes`` that would leave less than ``min_free_mb`` free."""
    free = shutil.disk_usage(folder).free
    if free - need_bytes < min_free_mb * MIB:
        raise DeliveryError(
            f"not enough disk space in {folder}: the download needs {need_bytes / MIB:.1f} MiB "
            f"and {min_free_mb} MiB must stay free (delivery.min_free_disk_mb), but only "
            f"{free / MIB:.1f} MiB is free",
            hint="free some space or lower delivery.min_free_disk_mb",
        )


def _hash_file(path: Path) -> tuple[Any, int]:
    h = hashlib.sha256()
    size = 0
    if path.is_file():
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
                size += len(block)
    return h, size


def _content_range(value: str | None) -> tuple[int, int | None] | None:
    """(first byte, total or None) of a ``Content-Range`` header, or None if unreadable."""
    m = _CONTENT_RANGE.match((value or "").strip())
    if not m:
        return None
    return int(m.group(1)), None if m.group(3) == "*" else int(m.group(3))


def download(
    url: str,
    target: Path,
    *,
    sha256: str,
    settings: DeliverySettings,
    progress: Progress,
    cancel: threading.Event,
    size_bytes: int | None = None,
) -> Path:
    """Download ``url`` to ``target`` (see the module docstring); returns ``target``.

    Raises ``DeliveryError`` (server refused, cut beyond ``max_retries``, sha256 mismatch, not
    enough disk) and ``CancelledError`` when ``cancel`` is set (the partial stays to resume).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(target)
    st = _State(partial)
    if size_bytes is not None and st.have > size_bytes:
        partial.unlink()
        st.reset()
    if size_bytes is not None:
        check_disk(target.parent, size_bytes - st.have, settings.min_free_disk_mb)
    timeout = httpx.Timeout(settings.read_timeout_s, connect=settings.connect_timeout_s)
    failures = 0
    with httpx.Client(timeout=timeout, follow_redirects=True) as client:
        while True:
            if cancel.is_set():
                raise CancelledError(f"download of {url} was cancelled ({st.have} bytes kept)")
            before = st.have
            try:
                total = _attempt(client, url, partial, st, size_bytes, settings, progress, cancel)
                break
            except (_Retry, httpx.TransportError) as exc:
                have = st.have
                failures = 1 if have > before else failures + 1
                why = str(exc) or type(exc).__name__
                if failures > settings.max_retries:
                    raise DeliveryError(
                        f"download of {url} failed after {failures} attempt(s) in a row: {why} "
                        f"({have} bytes kept in {partial.name}; the next pull resumes)"
                    ) from None
                delay = min(settings.retry_backoff_s * 2 ** (failures - 1), _MAX_BACKOFF_S)
                log.warning("delivery.retry", url=url, error=why, bytes_done=have, retry_in_s=delay)
                if cancel.wait(delay):
                    raise CancelledError(
                        f"download of {url} was cancelled ({have} bytes kept)"
                    ) from None
            except httpx.HTTPError as exc:
                raise DeliveryError(f"download of {url} failed: {exc}") from None
    progress.set_state("verifying")
    have, digest = st.have, st.hasher.hexdigest()
    if digest != sha256:
        partial.unlink(missing_ok=True)
        raise DeliveryError(
            f"download of {url} does not match its sha256: got {digest}, expected {sha256} "
            f"({have} bytes; the partial file was deleted, nothing was installed)"
        )
    if total is not None and have != total:  # pragma: no cover - _attempt guarantees it
        raise DeliveryError(f"download of {url} has {have} bytes, expected {total}")
    os.replace(partial, target)
    _sync_dir(target.parent)
    log.info("delivery.installed", url=url, path=str(target), bytes=have)
    return target


def _attempt(
    client: httpx.Client,
    url: str,
    partial: Path,
    st: _State,
    size_bytes: int | None,
    settings: DeliverySettings,
    progress: Progress,
    cancel: threading.Event,
) -> int | None:
    """One request: append (206) or rewrite (200) the partial, keeping ``st`` in step with
    what is on disk; returns the file's total size when known."""
    have = st.have
    # identity: the bytes on disk must be the file itself, so Range offsets mean the same thing.
    headers = {"Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    with client.stream("GET", url, headers=headers) as r:
        status = r.status_code
        if status == 416 and have:
            rng = _content_range(r.headers.get("content-range", "").replace("*/", "0-0/"))
            if rng is not None and rng[1] == have:
                return have  # the partial is the whole file already
            partial.unlink(missing_ok=True)
            st.reset()
            raise _Retry(f"server refused range from byte {have}: starting over")
        if status >= 500 or status in (408, 429):
            raise _Retry(f"HTTP {status}")
        if status not in (200, 206):
            raise DeliveryError(f"download of {url} failed: HTTP {status}")
        total: int | None
        if status == 206:
            rng = _content_range(r.headers.get("content-range"))
            if rng is None or rng[0] != have:
                partial.unlink(missing_ok=True)
                st.reset()
                raise _Retry(f"server sent an unexpected range ({r.headers.get('content-range')})")
            total, mode = rng[1], "ab"
        else:
            if have:
                log.info("delivery.range_ignored", url=url, discarded_bytes=have)
            st.reset()
            have, mode = 0, "wb"
            length = r.headers.get("content-length")
            total = int(length) if length and length.isdigit() else None
        if total is None:
            total = size_bytes
        elif size_bytes is not None and total != size_bytes:
            raise DeliveryError(
                f"download of {url}: the server has {total} bytes, the config says "
                f"size_bytes = {size_bytes}"
            )
        check_disk(partial.parent, (total - have) if total else 0, settings.min_free_disk_mb)
        progress.resume_from(have, total)
        with partial.open(mode) as f:
            try:
                for chunk in r.iter_bytes():  # as received: a cut loses nothing buffered
                    if cancel.is_set():
                        raise CancelledError(f"download of {url} was cancelled ({have} bytes kept)")
                    if total is not None and have + len(chunk) > total:
                        raise DeliveryError(f"download of {url}: server sent more than {total}")
                    f.write(chunk)
                    st.hasher.update(chunk)
                    st.have = have = have + len(chunk)
                    progress.advance(len(chunk))
            finally:
                f.flush()
                os.fsync(f.fileno())
        if total is not None and have < total:
            raise _Retry(f"connection closed at byte {have} of {total}")
        return total


def _sync_dir(folder: Path) -> None:
    """Make the rename durable (POSIX); harmless where directories cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
