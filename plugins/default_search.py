"""Built-in `search` and `index` skills over the on-device index.

`index` walks a folder into the user's index (text through the on-device sentence encoder,
photos through the image model for tags and through offline reverse geocoding for places);
`search` understands time and place in the query and ranks the rest hybrid (lexical + vector).
Both read the user's own files, so both are `private`: the router never sends them to the cloud.
"""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import structlog
from pydantic import BaseModel, ConfigDict, Field

from aios.context import SkillContext
from aios.errors import AIOSError, InvalidInputError, PermissionRefusedError
from aios.hookspecs import hookimpl
from aios.index.paths import USER_PATTERN, index_path
from aios.skill import Skill
from aios.types import Capability, DataClass, Sensitivity

log = structlog.get_logger("aios.index")

_KINDS = {"docs": "doc", "photos": "photo"}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- index ------------------------------------------------------------------------------------
class IndexInput(Strict):
    path: str = Field(
        min_length=1, max_length=4096, description="Folder to index, with its subfolders."
    )
    user: str = Field(
        default="default", pattern=USER_PATTERN, description="User profile whose index to fill."
    )


class Skipped(Strict):
    path: str
    reason: str


class IndexOutput(Strict):
    root: str
    new: int
    changed: int
    moved: int
    deleted: int
    unchanged: int
    ignored: int
    chunks: int
    skipped: list[Skipped]
    seconds: float
    cancelled: bool
    photo_tags: str = Field(description="Which model tagged photos, or why none did.")


class _LazyTagger:
    """Loads the image model on the first photo; without one, photos are indexed untagged.

    A device without the (built) image model still indexes photos by date, place and album;
    the report says why they carry no tags.
    """

    def __init__(self, ctx: SkillContext, k: int, min_score: float) -> None:
        self._ctx, self._k, self._min = ctx, k, min_score
        self._tagger: Any = None
        self._lock = threading.Lock()
        self.status = "no photos needed tagging"

    def __call__(self, images: list[Any]) -> list[list[dict[str, Any]]]:
        with self._lock:
            if self._tagger is None:
                self._tagger = self._load()
        if self._tagger is False:
            return [[] for _ in images]
        return self._tagger(images)

    def _load(self) -> Any:
        if self._k == 0:
            self.status = "photo tagging is off (index.photo_tags = 0)"
            return False
        try:
            from aios.vision.tagging import make_tagger

            spec = self._ctx.tensor_model(Capability.vision)
            self._ctx.tensor_io(Capability.vision)  # loads it now, so a failure is reported here
        except (AIOSError, ImportError) as exc:
            self.status = f"photos indexed without tags: {exc}"
            log.warning("aios.index.no_tagger", reason=str(exc))
            return False
        self.status = f"tagged by {spec.id}"
        return make_tagger(
            lambda inputs: self._ctx.run_tensor(inputs, Capability.vision),
            k=self._k,
            min_score=self._min,
        )


class Index(Skill):
    name = "index"
    description = (
        "Add a folder of documents and photos to the user's on-device search index "
        "(incremental: new, changed, moved and deleted files)."
    )
    Input = IndexInput
    Output = IndexOutput
    capabilities = frozenset({Capability.embedding})
    sensitivity = Sensitivity.private
    data_classes = frozenset({DataClass.documents, DataClass.photos, DataClass.location})
    text_field = "path"

    @classmethod
    def routing_text(cls, inp: Any) -> str | None:
        return None  # a folder to index is no question to rank

    def _root(self, path: str, ctx: SkillContext) -> Path:
        """The folder to index; for an app, only inside the OEM's ``index.app_roots``.

        The device's own user (the CLI) may index any folder they can read. An app calling the
        service may not: it would read files of the service's user that it cannot read itself.
        Symlinks are resolved first, so a link inside a root cannot lead out of it.
        """
        root = Path(path).expanduser()
        if ctx.options.app is not None:
            if not root.is_absolute():
                raise InvalidInputError(self.name, [f"path: {path!r} must be an absolute path"])
            allowed = [ctx.base_dir / Path(r).expanduser() for r in ctx.config.index.app_roots]
            real = root.resolve()
            if not any(real.is_relative_to(r.resolve()) for r in allowed):
                raise PermissionRefusedError(
                    f"app '{ctx.options.app}' may not index {root}: it is outside the folders "
                    "apps may index",
                    hint="the OEM config's [index] app_roots lists them"
                    + ("" if allowed else " (none are listed)"),
                )
        if not root.exists():
            raise InvalidInputError(self.name, [f"path: no such file or folder: {root}"])
        if not root.is_dir():
            raise InvalidInputError(
                self.name, [f"path: {root} is a file; index the folder that holds it"]
            )
        return root

    def run(self, inp: Any, ctx: SkillContext) -> IndexOutput:
        from aios.index.extract import Limits
        from aios.index.indexer import Indexer
        from aios.index.places import reverse_geocode
        from aios.index.store import IndexStore

        settings = ctx.config.index
        root = self._root(inp.path, ctx)
        spec = ctx.tensor_model(Capability.embedding)
        tagger = _LazyTagger(ctx, settings.photo_tags, settings.min_tag_score)
        limits = Limits(
            max_doc_bytes=int(settings.max_document_mb * 1024 * 1024),
            max_photo_bytes=int(settings.max_photo_mb * 1024 * 1024),
        )
        path = index_path(ctx.config, ctx.base_dir, inp.user)
        with IndexStore(path, model=spec.id) as store:
            indexer = Indexer(
                store,
                ctx.embed,
                tag=tagger,
                geocode=reverse_geocode,
                progress=ctx.progress,
                cancel=ctx.cancel,
                limits=limits,
            )
            report = indexer.add(root)
        return IndexOutput(
            root=str(report.root),
            new=report.new,
            changed=report.changed,
            moved=report.moved,
            deleted=report.deleted,
            unchanged=report.unchanged,
            ignored=report.ignored,
            chunks=report.chunks,
            skipped=[Skipped(path=str(p), reason=r) for p, r in report.skipped],
            seconds=round(report.seconds, 3),
            cancelled=report.cancelled,
            photo_tags=tagger.status,
        )


# A summary of several notes needs their text, not a snippet; this bounds what one result adds.
_MAX_TEXT_CHARS = 4000


# -- search -----------------------------------------------------------------------------------
class SearchInput(Strict):
    query: str = Field(min_length=1, max_length=1000, description="What to find, any language.")
    kind: Literal["docs", "photos"] | None = Field(
        default=None, description="Only documents or only photos (default: as the query says)."
    )
    limit: int = Field(default=10, ge=1, le=100, description="Most results to return.")
    user: str = Field(
        default="default", pattern=USER_PATTERN, description="User profile whose index to search."
    )
    with_text: bool = Field(
        default=False,
        description=f"Include each document's text (its first {_MAX_TEXT_CHARS:,} characters).",
    )


class SearchResult(Strict):
    path: str
    kind: Literal["doc", "photo"]
    title: str | None
    score: float
    snippet: str
    why: list[str] = Field(description="What matched: text, tag, semantic, time, place.")
    taken_at: str | None = Field(description="Photo time (EXIF) or document time, ISO 8601.")
    place: str | None
    tags: list[str]
    album: str | None
    text: str | None = Field(default=None, description="The passage in full (with_text).")


class SearchOutput(Strict):
    query: str
    understood: dict[str, Any] = Field(description="Time, place and kind read from the query.")
    results: list[SearchResult]

    def agent_text(self) -> str:
        """The results as one text, for a step that works on them (a summary of the notes)."""
        parts = []
        for r in self.results:
            body = (r.text or r.snippet or ", ".join(r.tags)).strip()
            head = (r.title or Path(r.path).stem).strip()
            if body.startswith(head):  # a document's text opens with its own title
                body = body[len(head) :].lstrip(" :\n")
            # The title as a sentence of its own: a small summarizer otherwise echoes headings.
            parts.append(f"{head.rstrip('.')}. {body}".strip())
        return "\n\n".join(parts)


class Search(Skill):
    name = "search"
    description = (
        "Search the user's documents and photos on device, in any language: time and place "
        "in the query become filters, the rest is ranked lexically and semantically."
    )
    Input = SearchInput
    Output = SearchOutput
    capabilities = frozenset({Capability.embedding})
    sensitivity = Sensitivity.private
    data_classes = frozenset({DataClass.documents, DataClass.photos, DataClass.location})
    text_field = "query"

    def __init__(self) -> None:
        # Open indexes stay open between queries: their vector matrix is cached in memory
        # (reading 100k vectors from SQLite takes about a second; a query, milliseconds).
        self._stores: dict[Path, Any] = {}
        self._lock = threading.Lock()

    def _store(self, path: Path) -> Any:
        from aios.index.store import IndexStore

        with self._lock:
            if path not in self._stores:
                self._stores[path] = IndexStore(path)
            return self._stores[path]

    def close(self) -> None:
        with self._lock:
            stores, self._stores = list(self._stores.values()), {}
        for store in stores:
            store.close()

    def run(self, inp: Any, ctx: SkillContext) -> SearchOutput:
        from aios.index.query import parse_query
        from aios.index.search import Filters, hybrid_search

        parsed = parse_query(inp.query)
        kind = _KINDS.get(inp.kind or parsed.kind or "")
        filters = Filters(
            kind=kind,
            time_range=parsed.time_bounds,
            near=parsed.near,
            place_names=parsed.place_names,
        )
        path = index_path(ctx.config, ctx.base_dir, inp.user)
        understood = parsed.to_dict()
        if not path.exists():
            return SearchOutput(query=inp.query, understood=understood, results=[])
        text = parsed.text.strip()
        embed = (lambda: ctx.embed([text])[0]) if text else None
        store = self._store(path)
        hits = hybrid_search(store, text, embed, filters, inp.limit)
        bodies = (
            store.document_texts([h.item.id for h in hits], _MAX_TEXT_CHARS)
            if inp.with_text
            else {}
        )
        return SearchOutput(
            query=inp.query,
            understood=understood,
            results=[
                _result(h, (bodies.get(h.item.id) or h.text) if inp.with_text else None)
                for h in hits
            ],
        )


def _result(hit: Any, text: str | None) -> SearchResult:
    it = hit.item
    place = None
    if it.place:
        names = [it.place.get("name"), it.place.get("admin1")]
        place = ", ".join(n for n in names if n)
    return SearchResult(
        path=it.path,
        kind=it.kind,
        title=it.title,
        score=hit.score,
        snippet=hit.snippet,
        why=hit.why,
        taken_at=(
            datetime.fromtimestamp(it.created_at).isoformat(timespec="seconds")
            if it.created_at
            else None
        ),
        place=place,
        tags=[t.get("label", "") for t in it.tags],
        album=it.album,
        text=text,
    )


@hookimpl
def register_skills(register: Any) -> None:
    register(Index)
    register(Search)
