"""``Indexer``: bring the index of one folder up to date, incrementally and crash-safely.

One run: walk the folder (sorted, no symlinks, no hidden entries), then for each supported file
  same size and mtime as indexed          → unchanged, the file is not even opened
  same size and mtime as a recorded skip  → still skipped, not retried until it changes
  content hash as indexed                 → unchanged content, only the stat is updated
  content hash of an item that vanished   → moved: new path and header, body kept
  otherwise                               → extracted, chunked and queued
Queued files are embedded together once they hold ``batch_chunks`` texts (one model call for
many small files), then the batch is written in one transaction, so a crash or ``kill -9``
loses at most the batch in flight and the next run picks up exactly where this one stopped.
Items whose files are gone are deleted at the end of a complete (not cancelled) walk.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import structlog

from aios.errors import IndexStoreError
from aios.index.chunking import chunk_text, header_text
from aios.index.extract import (
    Extracted,
    Limits,
    SkipFile,
    check_size,
    extract,
    kind_of,
    read_bytes,
)
from aios.index.store import ChunkRecord, IndexStore, ItemRecord

log = structlog.get_logger("aios.index")

Embed = Callable[[list[str]], np.ndarray]
Tag = Callable[[list[Any]], list[list[dict[str, Any]]]]
Geocode = Callable[[float, float], "dict[str, Any] | None"]
Progress = Callable[[int, int, str], None]


class CancelFlag(Protocol):
    def is_set(self) -> bool: ...


@dataclass
class IndexReport:
    root: str
    new: int = 0
    changed: int = 0
    moved: int = 0
    deleted: int = 0
    unchanged: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    ignored: int = 0
    chunks: int = 0
    seconds: float = 0.0
    cancelled: bool = False

    def summary(self) -> dict[str, Any]:
        """The numbers, for logs and the CLI (skips counted, not listed)."""
        out = asdict(self)
        out["skipped"] = len(self.skipped)
        return out


@dataclass
class _Job:
    """One file waiting in the batch for its embeddings."""

    path: Path
    status: str  # 'new' | 'changed' | 'moved'
    item: ItemRecord
    bodies: list[str] = field(default_factory=list)
    image: Any = None  # PIL image of a photo until it is tagged
    old_path: str | None = None  # for moves
    header: str = ""

    @property
    def n_texts(self) -> int:
        return 1 + len(self.bodies)


@dataclass
class WalkResult:
    """What ``walk`` found: supported files with their stat, and what it left out."""

    files: list[tuple[Path, os.stat_result]] = field(default_factory=list)
    ignored: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # folders we could not list
    bad_names: list[str] = field(default_factory=list)  # not UTF-8: SQLite cannot store them


def walk(root: Path) -> WalkResult:
    """Supported files below ``root`` in sorted depth-first order. Symlinks are never followed
    (so nothing outside the root is read and no link can loop); hidden entries (".git",
    ".thumbnails", ".Trash") and unknown extensions are counted as ignored."""
    out = WalkResult()
    seen_dirs: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            st = folder.stat()
            if (st.st_dev, st.st_ino) in seen_dirs:  # a bind mount looping back
                continue
            seen_dirs.add((st.st_dev, st.st_ino))
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            out.unreadable.append((str(folder), f"cannot list folder: {exc.strerror or exc}"))
            continue
        subdirs: list[Path] = []
        for entry in entries:
            try:
                if entry.name.startswith(".") or entry.is_symlink():
                    out.ignored += 1
                elif not _utf8(entry.name):
                    if entry.is_dir(follow_symlinks=False) or kind_of(Path(entry.name)):
                        raw = os.fsencode(entry.path).decode("utf-8", "backslashreplace")
                        out.bad_names.append(raw)
                    else:
                        out.ignored += 1
                elif entry.is_dir(follow_symlinks=False):
                    subdirs.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False) and kind_of(Path(entry.name)):
                    out.files.append((Path(entry.path), entry.stat(follow_symlinks=False)))
                else:  # unknown extension, archive, device, fifo, socket
                    out.ignored += 1
            except OSError:  # vanished while we looked
                continue
        stack.extend(reversed(subdirs))
    return out


def _utf8(name: str) -> bool:
    """False for names with undecodable bytes (os.fsdecode's surrogate escapes)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _clean_tag(tag: dict[str, Any]) -> dict[str, Any]:
    """label, label_zh, score as plain str/float (a model may return numpy scalars)."""
    try:
        score = round(float(tag.get("score", 0.0)), 4)
    except (TypeError, ValueError):
        score = 0.0
    return {"label": str(tag["label"]), "label_zh": str(tag.get("label_zh") or ""), "score": score}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Indexer:
    """Indexes folders into ``store`` with the caller's models.

    ``embed(texts)`` returns an (n, d) array; ``tag(images)`` a list of
    ``{"label", "label_zh", "score"}`` per image; ``geocode(lat, lon)`` a place dict or None;
    ``progress(done, total, path)`` is called as files complete; ``cancel.is_set()`` is checked
    between files."""

    def __init__(
        self,
        store: IndexStore,
        embed: Embed,
        *,
        tag: Tag | None = None,
        geocode: Geocode | None = None,
        progress: Progress | None = None,
        cancel: CancelFlag | None = None,
        batch_chunks: int = 64,
        limits: Limits | None = None,
    ) -> None:
        if batch_chunks < 1:
            raise ValueError("batch_chunks must be >= 1")
        self.store = store
        self.embed = embed
        self.tag = tag
        self.geocode = geocode
        self.progress = progress
        self.cancel = cancel
        self.batch_chunks = batch_chunks
        self.limits = limits or Limits()

    # -- the run ---------------------------------------------------------------------------------

    def add(self, root: Path) -> IndexReport:
        started = time.perf_counter()
        root = Path(root).expanduser().resolve()
        if not root.is_dir():
            raise IndexStoreError(f"{root}: not a folder (index the folder that holds it)")
        report = IndexReport(root=str(root))
        run = _Run(self, root, report)
        try:
            run.execute()
        finally:
            report.seconds = round(time.perf_counter() - started, 3)
            log.info("aios.index.run", **report.summary())
        return report


class _Run:
    """The state of one ``Indexer.add`` call."""

    def __init__(self, indexer: Indexer, root: Path, report: IndexReport) -> None:
        self.ix = indexer
        self.store = indexer.store
        self.limits = indexer.limits
        self.root = root
        self.report = report
        self.pending: list[_Job] = []
        self.pending_texts = 0
        self.done = 0
        self.total = 0

    def execute(self) -> None:
        known = self.store.items_under(str(self.root))
        skips = self.store.skipped_under(str(self.root))
        found = walk(self.root)
        self.report.ignored = found.ignored
        for folder, reason in found.unreadable:
            self._skip(folder, reason, record=False)
        for name in found.bad_names:
            self._skip(name, "file name is not valid UTF-8 (rename it to index it)", record=False)
        self.total = len(found.files)
        present = {str(p) for p, _ in found.files}
        blind = tuple(f.rstrip(os.sep) + os.sep for f, _ in found.unreadable)
        # Files under a folder we could not list are not gone: keep their items.
        vanished = [p for p in known if p not in present and not p.startswith(blind)]
        by_sha: dict[str, list[str]] = {}
        for p in vanished:
            by_sha.setdefault(known[p][2], []).append(p)

        for path, st in found.files:
            if self.ix.cancel is not None and self.ix.cancel.is_set():
                self.report.cancelled = True
                break
            self._visit(path, st, known, skips, by_sha)
        if self.report.cancelled:
            return  # queued work is dropped; what was committed stays and the next run resumes
        self._flush()
        gone = [p for paths in by_sha.values() for p in paths]
        self.report.deleted = self.store.delete_paths(gone)
        stale_skips = [p for p in skips if p not in present and not p.startswith(blind)]
        self.store.delete_paths(stale_skips)  # forgets their skip rows

    def _visit(
        self,
        path: Path,
        st: os.stat_result,
        known: dict[str, tuple[int, int, str]],
        skips: dict[str, tuple[int | None, int | None, str]],
        by_sha: dict[str, list[str]],
    ) -> None:
        key, size, mtime = str(path), st.st_size, st.st_mtime_ns
        old = known.get(key)
        if old is not None and old[0] == size and old[1] == mtime:
            self.report.unchanged += 1
            return self._advance(key)
        skip = skips.get(key)
        if skip is not None and skip[0] == size and skip[1] == mtime:
            self.report.skipped.append((key, skip[2]))
            return self._advance(key)
        kind = kind_of(path) or "doc"
        try:
            check_size(size, kind, self.limits)
            data = read_bytes(path, kind, self.limits)
            sha = _sha256(data)
            if old is not None and old[2] == sha:
                self.store.update_item_fields(key, size=size, mtime_ns=mtime)  # touched only
                self.report.unchanged += 1
                return self._advance(key)
            if by_sha.get(sha):
                job = self._move_job(path, by_sha[sha].pop(0), size, mtime)
            else:
                extracted = self._extract(path, data)
                del data  # the raw bytes can be large; only the extract is queued
                job = self._extract_job(path, extracted, size, mtime, sha, old is not None)
        except SkipFile as exc:
            # A retryable failure (permissions) is stored without a stat, so the next run
            # tries again: fixing permissions does not change mtime.
            stat = (None, None) if exc.retry else (size, mtime)
            self._skip(key, exc.reason, size=stat[0], mtime_ns=stat[1])
            return self._advance(key)
        self.pending.append(job)
        self.pending_texts += job.n_texts
        if self.pending_texts >= self.ix.batch_chunks:
            self._flush()

    def _extract(self, path: Path, data: bytes) -> Extracted:
        try:
            return extract(path, data, self.limits)
        except SkipFile:
            raise
        except Exception as exc:  # a reader bug must cost one file, not the run
            log.warning("aios.index.extract_failed", path=str(path), exc_info=True)
            raise SkipFile(f"cannot extract: {type(exc).__name__}: {str(exc)[:120]}") from None

    def _advance(self, path: str) -> None:
        self.done += 1
        if self.ix.progress is not None:
            self.ix.progress(self.done, self.total, path)

    def _skip(
        self,
        path: str,
        reason: str,
        *,
        record: bool = True,
        size: int | None = None,
        mtime_ns: int | None = None,
    ) -> None:
        self.report.skipped.append((path, reason))
        log.info("aios.index.skip", path=path, reason=reason)
        if record:
            self.store.record_skip(path, reason, size=size, mtime_ns=mtime_ns)

    # -- building jobs ---------------------------------------------------------------------------

    def _extract_job(
        self, path: Path, ex: Extracted, size: int, mtime_ns: int, sha: str, existed: bool
    ) -> _Job:
        meta = ex.meta
        lat, lon = meta.get("lat"), meta.get("lon")
        item = ItemRecord(
            path=str(path),
            root=str(self.root),
            kind=ex.kind,
            size=size,
            mtime_ns=mtime_ns,
            sha256=sha,
            title=ex.title or path.stem,
            created_at=meta.get("created_at", mtime_ns / 1e9),
            lat=lat,
            lon=lon,
            place=self._geocode(lat, lon) if lat is not None and lon is not None else None,
            album=path.parent.name or None,
        )
        bodies = chunk_text(ex.text, max_chunks=self.limits.max_chunks) if ex.text.strip() else []
        return _Job(path, "changed" if existed else "new", item, bodies, ex.image)

    def _move_job(self, path: Path, old_path: str, size: int, mtime_ns: int) -> _Job:
        item = self.store.item_by_path(old_path)
        if item is None:  # deleted by someone else meanwhile: index it afresh next run
            raise SkipFile("moved file vanished from the index; retry")
        if item.title == Path(old_path).stem:  # the title was only the file name: rename it
            item.title = path.stem
        item.path, item.root, item.album = str(path), str(self.root), path.parent.name or None
        item.size, item.mtime_ns = size, mtime_ns
        return _Job(path, "moved", item, old_path=old_path)

    def _geocode(self, lat: float, lon: float) -> dict[str, Any] | None:
        if self.ix.geocode is None:
            return None
        try:
            place = self.ix.geocode(lat, lon)
        except Exception as exc:  # a place name is a nicety; never lose the photo over it
            log.warning("aios.index.geocode_failed", lat=lat, lon=lon, error=repr(exc))
            return None
        return place if isinstance(place, dict) else None

    # -- the batch -------------------------------------------------------------------------------

    def _flush(self) -> None:
        jobs, self.pending, self.pending_texts = self.pending, [], 0
        if not jobs:
            return
        self._tag_photos([j for j in jobs if j.image is not None])
        for job in jobs:
            job.image = None  # tagged: free the pixels before embedding
            item = job.item
            job.header = header_text(
                title=item.title,
                album=item.album,
                tags=item.tags,
                place=item.place,
                file_name=job.path.name,
            )
        embedded = [(job, vecs) for job, vecs in self._embed_jobs(jobs) if vecs is not None]
        # The batch commits as one transaction: a crash loses only this batch (its embeddings
        # are lost anyway), and one commit per batch instead of per file halves write time.
        with self.store.transaction():
            for job, vecs in embedded:
                self._write(job, vecs)
        for job, _ in embedded:
            self._advance(str(job.path))

    def _tag_photos(self, jobs: list[_Job]) -> None:
        tag = self.ix.tag
        if tag is None or not jobs:
            return
        try:
            results = tag([j.image for j in jobs])
            if len(results) != len(jobs):
                raise ValueError(f"tagger returned {len(results)} results for {len(jobs)} images")
        except Exception as exc:
            # Retry one by one so a single image the tagger chokes on loses only its own tags.
            log.warning("aios.index.tag_batch_failed", error=repr(exc), images=len(jobs))
            results = []
            for job in jobs:
                try:
                    results.append(list(tag([job.image])[0]))
                except Exception as one:
                    log.warning("aios.index.tag_failed", path=str(job.path), error=repr(one))
                    results.append([])
        for job, tags in zip(jobs, results, strict=True):
            job.item.tags = [_clean_tag(t) for t in tags if isinstance(t, dict) and t.get("label")]

    def _embed(self, texts: list[str]) -> np.ndarray:
        out = np.asarray(self.ix.embed(texts), dtype=np.float32)
        if out.ndim != 2 or out.shape[0] != len(texts) or not np.all(np.isfinite(out)):
            raise ValueError(f"embedder returned shape {out.shape} for {len(texts)} texts")
        return out

    def _embed_jobs(self, jobs: list[_Job]) -> list[tuple[_Job, np.ndarray | None]]:
        """Embeddings per job. One call for the batch (split at ``batch_chunks``); if it fails,
        each file alone, so one text the model rejects skips only its file."""
        texts = [t for j in jobs for t in [j.header, *j.bodies]]
        try:
            step = max(self.ix.batch_chunks, 1)
            parts = [self._embed(texts[i : i + step]) for i in range(0, len(texts), step)]
            matrix = np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)
        except Exception as exc:
            log.warning("aios.index.embed_batch_failed", error=repr(exc), texts=len(texts))
            return self._embed_one_by_one(jobs, exc)
        out: list[tuple[_Job, np.ndarray | None]] = []
        offset = 0
        for job in jobs:
            out.append((job, matrix[offset : offset + job.n_texts]))
            offset += job.n_texts
        return out

    def _embed_one_by_one(
        self, jobs: list[_Job], batch_error: Exception
    ) -> list[tuple[_Job, np.ndarray | None]]:
        out: list[tuple[_Job, np.ndarray | None]] = []
        for job in jobs:
            try:
                out.append((job, self._embed([job.header, *job.bodies])))
            except Exception as exc:
                out.append((job, None))
                reason = f"embedding failed: {type(exc).__name__}: {str(exc)[:120]}"
                self._skip(str(job.path), reason, size=job.item.size, mtime_ns=job.item.mtime_ns)
                self._advance(str(job.path))
        if all(v is None for _, v in out):
            raise batch_error  # not one file embeds: the model is broken, not the input
        return out

    def _write(self, job: _Job, vecs: np.ndarray) -> None:
        header = ChunkRecord(0, job.header, vecs[0])
        if job.status == "moved":
            assert job.old_path is not None
            with self.store.transaction():  # path, header, title and stat change together
                self.store.move_item(
                    job.old_path, job.item.path, job.item.root, album=job.item.album, header=header
                )
                self.store.update_item_fields(
                    job.item.path,
                    size=job.item.size,
                    mtime_ns=job.item.mtime_ns,
                    title=job.item.title,
                )
            self.report.moved += 1
            return
        chunks = [header] + [
            ChunkRecord(i, text, vecs[i]) for i, text in enumerate(job.bodies, start=1)
        ]
        self.store.upsert_item(job.item, chunks)
        self.report.chunks += len(chunks)
        if job.status == "new":
            self.report.new += 1
        else:
            self.report.changed += 1
