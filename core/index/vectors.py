"""The index's embeddings in memory: every stored vector as one float32 matrix for search.

``VectorCache`` reads the float16 ``chunks.vec`` blobs once and keeps them decoded and
row-normalised until the next write (``meta.generation`` changes). After a write it refreshes
instead of rebuilding: chunk ids only grow (AUTOINCREMENT), so it reads only rows above the
cached maximum and drops deleted rows by id. ``IndexStore`` owns one and hands its views out
through ``IndexStore.vectors(kind)``.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import numpy as np
import structlog

log = structlog.get_logger("aios.index")

# Row kind codes, as the loading SELECT computes them (kind = 'photo').
_KIND_CODES = {"doc": 0, "photo": 1}


@dataclass(frozen=True)
class VectorView:
    """Every embedded chunk (of one kind, or all) as one row-normalised float32 matrix."""

    chunk_ids: np.ndarray  # int64 (n,)
    item_ids: np.ndarray  # int64 (n,)
    matrix: np.ndarray  # float32 (n, d)
    generation: int

    def __len__(self) -> int:
        return len(self.chunk_ids)


def _frozen_view(
    chunk_ids: np.ndarray, item_ids: np.ndarray, matrix: np.ndarray, generation: int
) -> VectorView:
    # Views are shared by every caller until the next write: one in-place edit (say, a
    # normalisation) would corrupt everyone's results, so they are read-only.
    for arr in (chunk_ids, item_ids, matrix):
        arr.flags.writeable = False
    return VectorView(chunk_ids, item_ids, matrix, generation)


def _decode_into(out: np.ndarray, f16: np.ndarray) -> None:
    """float16 rows → ``out`` (float32), re-normalised in place (float16 rounding leaves unit
    vectors off by ~1e-3); written straight into the cache buffer to skip a 200 MB copy."""
    out[:] = f16
    norms = np.sqrt(np.einsum("ij,ij->i", out, out))[:, None]
    np.divide(out, norms, out=out, where=norms > 0)


def _meta_value(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return row[0] if row else None


class VectorCache:
    """The cached views of one index. ``snapshot`` opens a read transaction on the store's
    connection for this thread, so the generation and the rows read with it agree."""

    def __init__(self, snapshot: Callable[[], AbstractContextManager[sqlite3.Connection]]) -> None:
        self._snapshot = snapshot
        self._lock = threading.Lock()
        self._views: dict[str | None, VectorView] = {}
        self._kinds = np.zeros(0, dtype=np.int8)  # per row of the cached full view
        self._buffer: np.ndarray | None = None  # backing rows of the cached matrix

    def view(self, kind: str | None, generation: int) -> VectorView:
        """The vectors of ``kind`` (a known kind, or None for all) as of ``generation``:
        the cached view while it is current, else a refreshed one."""
        with self._lock:
            cached = self._views.get(kind)
            if cached is not None and cached.generation == generation:
                return cached
            full = self._views.get(None)
            if full is None or full.generation != generation:
                full, self._kinds = self._load(full, self._kinds)
                self._views = {None: full}
            if kind is None:
                return full
            mask = self._kinds == _KIND_CODES[kind]
            view = _frozen_view(
                full.chunk_ids[mask], full.item_ids[mask], full.matrix[mask], full.generation
            )
            self._views[kind] = view
            return view

    def clear(self) -> None:
        """Forget the cached views (the store is closing)."""
        self._views.clear()

    def _load(self, old: VectorView | None, old_kinds: np.ndarray) -> tuple[VectorView, np.ndarray]:
        started = time.perf_counter()
        with self._snapshot() as conn:
            generation = int(
                conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0]
            )
            dim = int(_meta_value(conn, "embed_dim") or 0)
            reuse = old is not None and len(old) > 0 and old.matrix.shape[1] == dim
            after = int(old.chunk_ids[-1]) if reuse and old is not None else 0
            if reuse:
                # Every live id, from the (item_id, ord) index (no blobs read), as one string:
                # ~10x faster than iterating 100k rows in Python.
                ids_text = conn.execute("SELECT group_concat(id, ' ') FROM chunks").fetchone()[0]
                live = (
                    np.fromstring(ids_text, dtype=np.int64, sep=" ")
                    if ids_text
                    else np.zeros(0, np.int64)
                )
            rows = conn.execute(
                "SELECT id, item_id, kind = 'photo', vec FROM chunks "
                "WHERE vec IS NOT NULL AND id > ? ORDER BY id",
                (after,),
            ).fetchall()
        n = len(rows)
        chunk_ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=n)
        item_ids = np.fromiter((r[1] for r in rows), dtype=np.int64, count=n)
        kinds = np.fromiter((r[2] for r in rows), dtype=np.int8, count=n)
        fresh = np.frombuffer(b"".join(r[3] for r in rows), dtype="<f2").reshape(n, dim)
        del rows
        if reuse and old is not None:
            keep = np.isin(old.chunk_ids, live, assume_unique=True)
            matrix = self._grow(old.matrix, keep, fresh)
            chunk_ids = np.concatenate([old.chunk_ids[keep], chunk_ids])
            item_ids = np.concatenate([old.item_ids[keep], item_ids])
            kinds = np.concatenate([old_kinds[keep], kinds])
        else:
            matrix = self._grow(np.zeros((0, dim), np.float32), np.zeros(0, bool), fresh)
        log.debug(
            "aios.index.vectors_loaded",
            rows=len(chunk_ids),
            read=n,
            dim=dim,
            ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return _frozen_view(chunk_ids, item_ids, matrix, generation), kinds

    def _grow(self, old: np.ndarray, keep: np.ndarray, fresh: np.ndarray) -> np.ndarray:
        """``old[keep]`` followed by ``fresh``, as a view of a buffer with spare rows.

        While an indexer only adds, new rows go into the spare capacity in place (no copy of
        a 200 MB matrix per batch); views handed out earlier cover fewer rows, so they never
        see the change. A deletion or a full buffer means one copy into a new buffer."""
        buf = self._buffer
        kept = int(keep.sum())
        total = kept + len(fresh)
        appending = kept == len(old) and old.base is buf and buf is not None
        if appending and buf is not None and total <= len(buf) and old.shape[1] == buf.shape[1]:
            _decode_into(buf[kept:total], fresh)
            return buf[:total]
        buf = np.empty((total + total // 8 + 256, fresh.shape[1]), np.float32)
        # Copy the kept rows run by run: deletions are few and clustered (one file's chunks),
        # so this is a handful of memcpys, ~5x faster than a boolean gather.
        edges = np.flatnonzero(np.diff(np.concatenate(([0], keep.view(np.int8), [0]))))
        dst = 0
        for start, end in zip(edges[::2], edges[1::2], strict=True):
            buf[dst : dst + end - start] = old[start:end]
            dst += end - start
        _decode_into(buf[kept:total], fresh)
        self._buffer = buf
        return buf[:total]
