"""``IndexStore``: the on-device index, one SQLite database per user profile.

Layout (schema version 1):
  meta(key PK, value)          schema_version, embed_model, embed_dim, generation, segmenter
  items(id PK, path UNIQUE, root, kind 'doc'|'photo', size, mtime_ns, sha256, title,
        created_at REAL unix s, lat, lon, place JSON, album, tags JSON, indexed_at REAL)
  chunks(id PK AUTOINCREMENT, item_id → items ON DELETE CASCADE, ord, kind, text,
        vec BLOB f16 LE); ids are never reused, which lets the vector cache refresh
        incrementally; ``kind`` repeats the item's kind for the FTS row
  chunks_fts(terms, kind) FTS5, rowid = chunks.id, external content: the view
        ``chunks_fts_source`` recomputes the terms from ``chunks.text`` with the SQL function
        ``index_terms`` (registered on every connection), so the segmented text, a third of the
        database when stored, is not kept twice. ``kind`` makes a kind filter a doclist
        intersection inside FTS5 (weight 0 in bm25) instead of a join per match. A trigger
        removes a chunk's FTS entry with the chunk (also on a cascade from ``items``), in the
        same transaction. ``meta.segmenter`` records the segmentation and Unicode version; when
        it differs (a new Python), the FTS index is rebuilt on open, since deleting an entry
        needs the very terms it was indexed with
  skipped(path PK, reason, at, size, mtime_ns)  files that could not be read, with the stat
        they had, so an unchanged broken file is not retried on every run

Concurrency: WAL lets readers run while one writer commits. Each thread gets its own
connection (sqlite3 connections must not be shared between threads mid-statement); writes are
serialised by a lock and grouped with ``transaction()``. Every write transaction bumps
``meta.generation``, which is how the in-memory vector cache notices writes made by another
thread or another process.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from aios.errors import IndexStoreError
from aios.index.geo import bbox, haversine_km
from aios.index.textseg import (
    SEGMENTATION_VERSION,
    index_terms,
    match_expression,
    phrase_expression,
)
from aios.index.vectors import VectorCache, VectorView  # VectorView: re-exported, public API

log = structlog.get_logger("aios.index")

SCHEMA_VERSION = 1
# What the FTS terms depend on: our segmentation rules and Python's Unicode tables.
SEGMENTER = f"{SEGMENTATION_VERSION}/unicode-{unicodedata.unidata_version}"
KINDS = ("doc", "photo")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    root TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('doc', 'photo')),
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    title TEXT,
    created_at REAL,
    lat REAL,
    lon REAL,
    place TEXT,
    album TEXT,
    tags TEXT,
    indexed_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS items_root ON items(root);
CREATE INDEX IF NOT EXISTS items_created ON items(created_at);
CREATE INDEX IF NOT EXISTS items_kind ON items(kind);
CREATE INDEX IF NOT EXISTS items_sha ON items(sha256);
CREATE INDEX IF NOT EXISTS items_lat ON items(lat) WHERE lat IS NOT NULL;
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
    ord INTEGER NOT NULL,
    kind TEXT NOT NULL,
    text TEXT NOT NULL,
    vec BLOB,
    UNIQUE (item_id, ord)
);
CREATE VIEW IF NOT EXISTS chunks_fts_source (id, terms, kind) AS
    SELECT id, index_terms(text), kind FROM chunks;
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    terms, kind, content = 'chunks_fts_source', content_rowid = 'id',
    tokenize = "unicode61 remove_diacritics 2 categories 'L* N* Co M*'"
);
CREATE TRIGGER IF NOT EXISTS chunks_fts_delete AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts (chunks_fts, rowid, terms, kind)
        VALUES ('delete', old.id, index_terms(old.text), old.kind);
END;
CREATE TABLE IF NOT EXISTS skipped (
    path TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    at REAL NOT NULL,
    size INTEGER,
    mtime_ns INTEGER
);
"""

_ITEM_COLUMNS = (
    "path, root, kind, size, mtime_ns, sha256, title, created_at, lat, lon, place, album, tags, "
    "indexed_at"
)


@dataclass
class ItemRecord:
    """One indexed file. ``place`` and ``tags`` are stored as JSON."""

    path: str
    root: str
    kind: str
    size: int
    mtime_ns: int
    sha256: str
    title: str | None = None
    created_at: float | None = None
    lat: float | None = None
    lon: float | None = None
    place: dict[str, Any] | None = None
    album: str | None = None
    tags: list[dict[str, Any]] = field(default_factory=list)
    indexed_at: float | None = None
    id: int | None = None


@dataclass
class ChunkRecord:
    """Chunk ``ord`` of an item (0 = header); ``vec`` is stored normalised as float16."""

    ord: int
    text: str
    vec: np.ndarray | None = None


def _json(value: Any) -> str:
    # Models hand back numpy scalars (a float32 score); store them as plain JSON numbers.
    def plain(obj: Any) -> Any:
        return obj.item() if isinstance(obj, np.generic) else str(obj)

    return json.dumps(value, ensure_ascii=False, default=plain)


def _ids_json(ids: Iterable[int]) -> str:
    # json_each() takes any number of ids in one bound parameter: no SQL built from values.
    return json.dumps([int(i) for i in ids])


def _encode_vec(vec: np.ndarray, dim: int | None) -> bytes:
    v = np.asarray(vec, dtype=np.float32).reshape(-1)
    if dim is not None and v.shape[0] != dim:
        raise IndexStoreError(
            f"embedding has {v.shape[0]} dimensions, the index holds {dim}",
            hint="re-index with the same embedding model, or rebuild the index",
        )
    if not np.all(np.isfinite(v)):
        raise IndexStoreError("embedding contains NaN or infinity")
    norm = float(np.linalg.norm(v))
    # Normalised before the float16 cast: unit vectors fit float16's range with ~3 digits.
    return (v / norm if norm > 0 else v).astype("<f2").tobytes()


def _row_to_item(row: sqlite3.Row) -> ItemRecord:
    return ItemRecord(
        id=row["id"],
        path=row["path"],
        root=row["root"],
        kind=row["kind"],
        size=row["size"],
        mtime_ns=row["mtime_ns"],
        sha256=row["sha256"],
        title=row["title"],
        created_at=row["created_at"],
        lat=row["lat"],
        lon=row["lon"],
        place=json.loads(row["place"]) if row["place"] else None,
        album=row["album"],
        tags=json.loads(row["tags"]) if row["tags"] else [],
        indexed_at=row["indexed_at"],
    )


def _under(root: str) -> tuple[str, str]:
    """[lo, hi) bounds of every path strictly below ``root``: a range scan on the path index."""
    prefix = root.rstrip("/\\") + ("\\" if "\\" in root and "/" not in root else "/")
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)


class IndexStore:
    """The index database at ``path``. ``model``/``dim`` name the embedding model the caller
    uses: the first store records them, later opens with another model or dimension are refused
    (vectors of two models are not comparable); leave them out to open for reading only."""

    def __init__(self, path: Path, *, model: str | None = None, dim: int | None = None) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._write_lock = threading.RLock()
        self._vectors = VectorCache(self._snapshot)
        self._df_lock = threading.Lock()
        # Document frequencies only choose which query terms to look up, so a slightly stale
        # count is harmless; counting is not free (FTS5 walks the term's postings).
        self._df: dict[str, int] = {}
        self._df_basis = 0  # chunk count when the cached frequencies were taken
        self._counted: tuple[int, int] = (-1, 0)  # (generation, chunk count)
        self._closed = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._migrate()
            self._check_model(model, dim)
        except BaseException:
            self.close()
            raise

    # -- connections and transactions -------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        if self._closed:
            raise IndexStoreError(f"{self.path}: index is closed")
        conn = None
        try:
            # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE) in transaction().
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
            conn.row_factory = sqlite3.Row
            # The FTS view and delete trigger call it; it must be the very same segmentation.
            conn.create_function("index_terms", 1, index_terms, deterministic=True)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=30000")
            # Per-connection view of the FTS dictionary: how many chunks hold each term.
            conn.execute(
                "CREATE VIRTUAL TABLE IF NOT EXISTS temp.chunks_vocab "
                "USING fts5vocab(main, chunks_fts, row)"
            )
        except sqlite3.DatabaseError as exc:
            if conn is not None:
                conn.close()
            raise IndexStoreError(
                f"{self.path}: cannot open index ({exc})", hint="delete it to re-index"
            ) from None
        self._local.conn = conn
        self._local.depth = 0
        with self._conns_lock:
            self._conns.append(conn)
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; nested uses join the outer one and commit with it."""
        with self._write_lock:
            conn = self._conn()
            if self._local.depth:
                self._local.depth += 1
                try:
                    yield conn
                finally:
                    self._local.depth -= 1
                return
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:  # another writer held it past busy_timeout
                raise IndexStoreError(f"{self.path}: cannot write ({exc})") from exc
            self._local.depth = 1
            try:
                yield conn
                conn.execute(
                    "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'"
                )
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:  # SQLite may have rolled back already (disk full)
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise IndexStoreError(f"{self.path}: write failed ({exc})") from exc
                raise
            finally:
                self._local.depth = 0

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction so several SELECTs see one consistent state."""
        conn = self._conn()
        if self._local.depth:  # already inside our own write transaction
            yield conn
            return
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    def close(self) -> None:
        """Close every thread's connection; the store cannot be used afterwards."""
        self._closed = True
        with self._conns_lock:
            for conn in self._conns:
                try:
                    conn.close()
                except sqlite3.Error:  # a connection busy in another thread: nothing to save
                    pass
            self._conns.clear()
        self._local = threading.local()
        self._vectors.clear()

    def __enter__(self) -> IndexStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema and model ---------------------------------------------------------------------

    def _migrate(self) -> None:
        conn = self._conn()
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.OperationalError:  # no meta table: a new database
            row = None
        except sqlite3.DatabaseError as exc:
            raise IndexStoreError(
                f"{self.path}: not a readable index ({exc})", hint="delete it to re-index"
            ) from None
        version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise IndexStoreError(
                f"{self.path}: index schema version {version} is newer than this aios "
                f"supports ({SCHEMA_VERSION})",
                hint="upgrade aios, or delete the index to re-index",
            )
        if version == SCHEMA_VERSION:
            self._check_segmenter()
            return
        # One script, one transaction: executescript() would commit a BEGIN issued before it.
        # IF NOT EXISTS / OR IGNORE keep two processes creating the same new index harmless.
        script = (
            "BEGIN IMMEDIATE;"
            + _SCHEMA
            + f"INSERT OR REPLACE INTO meta VALUES ('schema_version', '{SCHEMA_VERSION}');"
            + "INSERT OR IGNORE INTO meta VALUES ('generation', '0');"
            + f"INSERT OR IGNORE INTO meta VALUES ('segmenter', '{SEGMENTER}');"
            + "COMMIT;"
        )
        with self._write_lock:
            try:
                conn.executescript(script)
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _check_segmenter(self) -> None:
        if self._meta("segmenter") == SEGMENTER:
            return
        started = time.perf_counter()
        with self.transaction() as conn:
            conn.execute("INSERT INTO chunks_fts (chunks_fts) VALUES ('rebuild')")
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('segmenter', ?)", (SEGMENTER,))
        log.info(
            "aios.index.fts_rebuilt",
            segmenter=SEGMENTER,
            seconds=round(time.perf_counter() - started, 2),
        )

    def _meta(self, key: str) -> str | None:
        row = self._conn().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _check_model(self, model: str | None, dim: int | None) -> None:
        have_model, have_dim = self._meta("embed_model"), self._meta("embed_dim")
        mismatch = (model is not None and have_model is not None and model != have_model) or (
            dim is not None and have_dim is not None and int(have_dim) != dim
        )
        if mismatch:
            raise IndexStoreError(
                f"{self.path}: index was built with embedding model {have_model} "
                f"(dim {have_dim}), not {model} (dim {dim})",
                hint="re-index: delete the index or call IndexStore.clear() and add the folders",
            )
        if (model and not have_model) or (dim and not have_dim):
            with self.transaction() as conn:
                if model:
                    conn.execute("INSERT OR REPLACE INTO meta VALUES ('embed_model', ?)", (model,))
                if dim:
                    conn.execute("INSERT OR REPLACE INTO meta VALUES ('embed_dim', ?)", (str(dim),))

    @property
    def dim(self) -> int | None:
        value = self._meta("embed_dim")
        return int(value) if value else None

    @property
    def model(self) -> str | None:
        return self._meta("embed_model")

    @property
    def generation(self) -> int:
        """Bumped by every committed write, from any thread or process."""
        return int(self._meta("generation") or 0)

    def clear(self) -> None:
        """Drop every item, chunk and skip, and forget the embedding model (before re-indexing
        with another model)."""
        with self.transaction() as conn:
            conn.execute("DELETE FROM chunks")
            conn.execute("DELETE FROM items")
            conn.execute("DELETE FROM skipped")
            conn.execute("DELETE FROM meta WHERE key IN ('embed_model', 'embed_dim')")

    # -- writes ----------------------------------------------------------------------------------

    def upsert_item(self, item: ItemRecord, chunks: Sequence[ChunkRecord]) -> int:
        """Store ``item`` with its chunks, replacing any earlier version of the same path in
        one transaction (the item keeps its id). Clears a skip recorded for the path."""
        dim = self.dim
        blobs = [None if c.vec is None else _encode_vec(c.vec, dim) for c in chunks]
        if dim is None and any(b is not None for b in blobs):
            dim = next(len(b) // 2 for b in blobs if b is not None)
            blobs = [None if c.vec is None else _encode_vec(c.vec, dim) for c in chunks]
        indexed_at = item.indexed_at if item.indexed_at is not None else time.time()
        values = (
            item.path,
            item.root,
            item.kind,
            item.size,
            item.mtime_ns,
            item.sha256,
            item.title,
            item.created_at,
            item.lat,
            item.lon,
            _json(item.place) if item.place else None,
            item.album,
            _json(item.tags) if item.tags else None,
            indexed_at,
        )
        updates = ", ".join(f"{c} = excluded.{c}" for c in _ITEM_COLUMNS.split(", ")[1:])
        with self.transaction() as conn:
            if dim is not None and self._meta("embed_dim") is None:
                conn.execute("INSERT INTO meta VALUES ('embed_dim', ?)", (str(dim),))
            item_id = conn.execute(
                f"INSERT INTO items ({_ITEM_COLUMNS}) VALUES ({', '.join('?' * 14)}) "
                f"ON CONFLICT(path) DO UPDATE SET {updates} RETURNING id",
                values,
            ).fetchone()[0]
            conn.execute("DELETE FROM chunks WHERE item_id = ?", (item_id,))
            self._insert_chunks(conn, item_id, item.kind, chunks, blobs)
            conn.execute("DELETE FROM skipped WHERE path = ?", (item.path,))
        item.id, item.indexed_at = item_id, indexed_at
        return int(item_id)

    @staticmethod
    def _insert_chunks(
        conn: sqlite3.Connection,
        item_id: int,
        kind: str,
        chunks: Sequence[ChunkRecord],
        blobs: Sequence[bytes | None],
    ) -> None:
        for chunk, blob in zip(chunks, blobs, strict=True):
            chunk_id = conn.execute(
                "INSERT INTO chunks (item_id, ord, kind, text, vec) VALUES (?, ?, ?, ?, ?)",
                (item_id, chunk.ord, kind, chunk.text, blob),
            ).lastrowid
            conn.execute(
                "INSERT INTO chunks_fts (rowid, terms, kind) VALUES (?, ?, ?)",
                (chunk_id, index_terms(chunk.text), kind),
            )

    def move_item(
        self,
        old_path: str,
        new_path: str,
        root: str,
        *,
        album: str | None = None,
        header: ChunkRecord | None = None,
    ) -> int | None:
        """Give an item a new path (a moved or renamed file) without re-embedding its body;
        ``header`` replaces chunk 0 when the album or file name changed. Returns the item id,
        or None when ``old_path`` is not indexed."""
        blob = None if header is None or header.vec is None else _encode_vec(header.vec, self.dim)
        with self.transaction() as conn:
            row = conn.execute("SELECT id, kind FROM items WHERE path = ?", (old_path,)).fetchone()
            if row is None:
                return None
            item_id, kind = int(row[0]), str(row[1])
            # A stale entry already at the destination is replaced by the moved one.
            conn.execute("DELETE FROM items WHERE path = ? AND id != ?", (new_path, item_id))
            conn.execute(
                "UPDATE items SET path = ?, root = ?, album = COALESCE(?, album), indexed_at = ?"
                " WHERE id = ?",
                (new_path, root, album, time.time(), item_id),
            )
            if header is not None:
                conn.execute("DELETE FROM chunks WHERE item_id = ? AND ord = 0", (item_id,))
                self._insert_chunks(conn, item_id, kind, [header], [blob])
            conn.execute("DELETE FROM skipped WHERE path IN (?, ?)", (old_path, new_path))
        return item_id

    def update_item_fields(
        self, path: str, *, size: int, mtime_ns: int, title: str | None = None
    ) -> None:
        """New stat (and title) for an item whose content (sha256) did not change.

        A created_at that came from the old mtime (no date inside the file) follows the new
        one, so the index reads the same as a fresh index of the same files would.
        """
        with self.transaction() as conn:
            conn.execute(
                "UPDATE items SET size = ?, mtime_ns = ?, title = COALESCE(?, title), "
                "created_at = CASE WHEN created_at = mtime_ns / 1e9 THEN ? ELSE created_at END "
                "WHERE path = ?",
                (size, mtime_ns, title, mtime_ns / 1e9, path),
            )

    def delete_paths(self, paths: Iterable[str]) -> int:
        """Forget these files (their chunks and FTS rows go with them); returns items removed."""
        paths = list(paths)
        if not paths:
            return 0
        with self.transaction() as conn:
            doomed = json.dumps(paths)
            cur = conn.execute(
                "DELETE FROM items WHERE path IN (SELECT value FROM json_each(?))", (doomed,)
            )
            conn.execute(
                "DELETE FROM skipped WHERE path IN (SELECT value FROM json_each(?))", (doomed,)
            )
            return cur.rowcount

    def record_skip(
        self, path: str, reason: str, *, size: int | None = None, mtime_ns: int | None = None
    ) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO skipped (path, reason, at, size, mtime_ns) "
                "VALUES (?, ?, ?, ?, ?)",
                (path, reason, time.time(), size, mtime_ns),
            )

    def clear_skip(self, path: str) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM skipped WHERE path = ?", (path,))

    # -- reads for the indexer -----------------------------------------------------------------

    def items_under(self, root: str) -> dict[str, tuple[int, int, str]]:
        """path → (size, mtime_ns, sha256) of every item below ``root``, by path prefix (so a
        folder indexed earlier as its own root is seen by a run over its parent)."""
        lo, hi = _under(root)
        rows = self._conn().execute(
            "SELECT path, size, mtime_ns, sha256 FROM items WHERE path >= ? AND path < ?",
            (lo, hi),
        )
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    def skipped_under(self, root: str) -> dict[str, tuple[int | None, int | None, str]]:
        """path → (size, mtime_ns, reason) of every skipped file below ``root``."""
        lo, hi = _under(root)
        rows = self._conn().execute(
            "SELECT path, size, mtime_ns, reason FROM skipped WHERE path >= ? AND path < ?",
            (lo, hi),
        )
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    def item_by_path(self, path: str) -> ItemRecord | None:
        row = self._conn().execute("SELECT * FROM items WHERE path = ?", (path,)).fetchone()
        return _row_to_item(row) if row else None

    # -- reads for search ----------------------------------------------------------------------

    def lexical(
        self,
        terms: Sequence[str],
        limit: int = 200,
        kind: str | None = None,
        item_ids: Iterable[int] | None = None,
        phrases: Sequence[str] = (),
    ) -> list[tuple[int, int, float]]:
        """(chunk_id, item_id, score) best first, score = -bm25 (higher is better). ``terms``
        come from ``textseg.query_terms``; they are quoted, so they cannot inject FTS syntax.
        ``phrases`` (place names) match only as whole phrases; all are OR-ed."""
        alternatives = [match_expression(terms)] + [phrase_expression(p) for p in phrases]
        expr = " OR ".join(a for a in alternatives if a)
        if not expr or limit <= 0:
            return []
        if kind is not None and kind not in KINDS:
            raise IndexStoreError(f"unknown item kind '{kind}' (use one of {', '.join(KINDS)})")
        # Terms match the terms column only (so "photo" never matches the kind column); the
        # kind column has weight 0, so filtering by kind leaves the scores unchanged.
        match = f"terms : ({expr})" + (f' AND kind : "{kind}"' if kind else "")
        rank = "bm25(chunks_fts, 1.0, 0.0)"
        if item_ids is None:
            # Rank inside FTS5 first and join only the survivors: a per-match join to chunks
            # costs as much as bm25 itself when a query matches thousands of chunks.
            sql = (
                f"SELECT r.id, c.item_id, r.score FROM (SELECT rowid AS id, -{rank} AS score "
                f"FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY {rank} LIMIT ?) r "
                "JOIN chunks c ON c.id = r.id ORDER BY r.score DESC"
            )
            return self._lexical_rows(sql, [match, int(limit)])
        sql = (
            f"SELECT f.rowid, c.item_id, -{rank} AS score FROM chunks_fts f "
            "JOIN chunks c ON c.id = f.rowid WHERE chunks_fts MATCH ? "
            "AND c.item_id IN (SELECT value FROM json_each(?)) ORDER BY score DESC LIMIT ?"
        )
        return self._lexical_rows(sql, [match, _ids_json(item_ids), int(limit)])

    def _lexical_rows(self, sql: str, args: list[Any]) -> list[tuple[int, int, float]]:
        try:
            rows = self._conn().execute(sql, args).fetchall()
        except sqlite3.OperationalError as exc:  # quoting makes this unreachable; be loud
            raise IndexStoreError(f"full-text query failed: {exc}") from None
        return [(int(r[0]), int(r[1]), float(r[2])) for r in rows]

    def doc_frequencies(self, terms: Sequence[str]) -> dict[str, int]:
        """How many chunks hold each (already segmented) term; 0 for unknown terms.

        Cached until the index grows or shrinks by a tenth, or the cache holds too many terms.
        """
        total = self.chunk_count()
        with self._df_lock:
            if (
                abs(total - self._df_basis) > 0.1 * max(self._df_basis, 1)
                or len(self._df) > 200_000
            ):
                self._df, self._df_basis = {}, total
            known = dict(self._df)
        conn = self._conn()
        out = {}
        for term in dict.fromkeys(terms):
            if term not in known:
                row = conn.execute(
                    "SELECT doc FROM temp.chunks_vocab WHERE term = ?", (term,)
                ).fetchone()
                known[term] = int(row[0]) if row else 0
                with self._df_lock:
                    self._df[term] = known[term]
            out[term] = known[term]
        return out

    def chunk_count(self) -> int:
        generation = self.generation
        if self._counted[0] != generation:
            n = int(self._conn().execute("SELECT COUNT(*) FROM chunks").fetchone()[0])
            self._counted = (generation, n)
        return self._counted[1]

    def vectors(self, kind: str | None = None) -> VectorView:
        """Every stored vector (of ``kind``) as one matrix, cached until the next write.

        After a write the cache is refreshed, not rebuilt: chunk ids only grow (AUTOINCREMENT),
        so only rows above the cached maximum are read and deleted rows are dropped by id,
        which keeps searches fast while an indexer commits batch after batch."""
        if kind is not None and kind not in KINDS:
            raise IndexStoreError(f"unknown item kind '{kind}' (use one of {', '.join(KINDS)})")
        return self._vectors.view(kind, self.generation)

    def items(self, ids: Iterable[int]) -> dict[int, ItemRecord]:
        rows = self._conn().execute(
            "SELECT * FROM items WHERE id IN (SELECT value FROM json_each(?))", (_ids_json(ids),)
        )
        return {r["id"]: _row_to_item(r) for r in rows}

    def chunk_texts(self, ids: Iterable[int]) -> dict[int, str]:
        rows = self._conn().execute(
            "SELECT id, text FROM chunks WHERE id IN (SELECT value FROM json_each(?))",
            (_ids_json(ids),),
        )
        return {int(r[0]): r[1] for r in rows}

    def document_texts(self, item_ids: Iterable[int], max_chars: int) -> dict[int, str]:
        """Each item's text from its body chunks in order (chunk 0 is its name and folder),
        cut to ``max_chars``."""
        rows = self._conn().execute(
            "SELECT item_id, text FROM chunks WHERE ord > 0 AND item_id IN "
            "(SELECT value FROM json_each(?)) ORDER BY item_id, ord",
            (_ids_json(item_ids),),
        )
        out: dict[int, str] = {}
        for item_id, text in rows:
            have = out.get(item_id, "")
            if len(have) < max_chars:
                out[item_id] = (have + "\n" + text if have else text)[:max_chars]
        return out

    def filter_items(
        self,
        kind: str | None = None,
        time_range: tuple[float | None, float | None] | None = None,
        near: Sequence[tuple[float, float, float]] | None = None,
    ) -> set[int]:
        """Ids of items of ``kind``, created within ``time_range`` ([start, end), either end
        may be None), within ``radius_km`` of any of the ``near`` points. Distances: a bounding
        box in SQL, then exact haversine in numpy."""
        where: list[str] = []
        args: list[Any] = []
        if kind is not None:
            where.append("kind = ?")
            args.append(kind)
        if time_range is not None:
            start, end = time_range
            if start is not None:
                where.append("created_at >= ?")
                args.append(float(start))
            if end is not None:
                where.append("created_at < ?")
                args.append(float(end))
        if near:
            boxes = [bbox(lat, lon, km) for lat, lon, km in near]
            clauses = []
            for sql, box_args in boxes:
                clauses.append(sql)
                args.extend(box_args)
            where.append("(" + " OR ".join(clauses) + ")")
        sql = "SELECT id, lat, lon FROM items" + (" WHERE " + " AND ".join(where) if where else "")
        rows = self._conn().execute(sql, args).fetchall()
        if not near:
            return {int(r[0]) for r in rows}
        if not rows:
            return set()
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        lat = np.radians(np.array([r[1] for r in rows], dtype=np.float64))
        lon = np.radians(np.array([r[2] for r in rows], dtype=np.float64))
        keep = np.zeros(len(rows), dtype=bool)
        for plat, plon, km in near:
            keep |= haversine_km(lat, lon, math.radians(plat), math.radians(plon)) <= km
        return {int(i) for i in ids[keep]}

    def stats(self) -> dict[str, Any]:
        with self._snapshot() as conn:
            kinds = dict(conn.execute("SELECT kind, COUNT(*) FROM items GROUP BY kind").fetchall())
            chunks = conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
            skipped = conn.execute("SELECT COUNT(*) FROM skipped").fetchone()[0]
            last = conn.execute("SELECT MAX(indexed_at) FROM items").fetchone()[0]
            page = conn.execute("PRAGMA page_size").fetchone()[0]
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
        wal = self.path.with_name(self.path.name + "-wal")
        return {
            "items": {k: int(kinds.get(k, 0)) for k in KINDS},
            "chunks": int(chunks),
            "skipped": int(skipped),
            "db_bytes": int(page * pages) + (wal.stat().st_size if wal.exists() else 0),
            "last_indexed_at": last,
            "embed_model": self.model,
            "embed_dim": self.dim,
        }

    def skipped(self) -> list[tuple[str, str]]:
        """(path, reason) of every file that could not be indexed, by path."""
        rows = self._conn().execute("SELECT path, reason FROM skipped ORDER BY path")
        return [(r[0], r[1]) for r in rows]
