"""Hybrid ranking over the on-device index: FTS5 lexical matches fused with vector similarity.

Each side ranks chunks and an item takes its best chunk on each side. The fused score is
``LEXICAL_WEIGHT * bm25 / best bm25 of the query + (1 - LEXICAL_WEIGHT) * cosine``: bm25 only
means something relative to the query's best match, while cosine is already on an absolute
scale, so a strong lexical match leads and the embedding decides among close ones and carries
the queries with no shared words at all (a Chinese query over English documents). On ACLSum
this beat reciprocal-rank fusion, which let the weaker vector side pull good lexical matches
down (top-1 0.89 with RRF vs 0.965 fused this way; 0.961 lexical alone), and the result is flat
for weights 0.5-0.8 (``bench/search_quality.py``).
The exact vector search is one matrix product over the cached, row-normalised matrix: at phone
scale (100k chunks × 512 dims) that is a few milliseconds, so no approximate index is needed
(``bench/search_quality.py`` measures it).

Filters understood from the query (time, place, kind) narrow the candidate items first; a
query that is only filters ("photos from last March") lists the matching items newest first.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aios.index.store import IndexStore, ItemRecord
from aios.index.textseg import is_prefix_term, query_terms

LEXICAL_WEIGHT = 0.6
_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="aios-search")
# Query terms found in more than this share of chunks say little about which item is meant and
# make FTS5 score most of the index ("model", "的"); they are left to the vector side. On
# ACLSum this also raised lexical top-1 (0.961 -> 0.964); at 100k chunks it is what keeps a
# sentence-long query fast.
MAX_TERM_SHARE = 0.1
MAX_TERMS = 16
# FTS5 computes bm25 for every chunk that matches any term (≈2.5 µs each here), so a query
# reads the rarest terms' posting lists until about this many; the rare terms carry most of
# bm25's weight anyway. This bounds lexical latency by the budget, not by the index size.
MAX_POSTINGS = 3000
# Candidates each side contributes before fusion.
CANDIDATES = 200
# Vector matches below this cosine are not reported as "semantic" reasons on their own.
SEMANTIC_MIN = 0.25


@dataclass(frozen=True)
class Filters:
    kind: str | None = None
    time_range: tuple[float | None, float | None] | None = None
    near: tuple[tuple[float, float, float], ...] = ()
    place_names: tuple[str, ...] = ()

    @property
    def narrows(self) -> bool:
        """Whether candidates must be listed first; kind alone is filtered inside each side."""
        return self.time_range is not None or bool(self.near)


@dataclass
class Hit:
    item: ItemRecord
    score: float
    lexical_rank: int | None = None
    vector_rank: int | None = None
    cosine: float | None = None
    chunk_id: int | None = None
    why: list[str] = field(default_factory=list)
    snippet: str = ""
    text: str = ""  # the whole matching chunk


def _best_per_item(
    chunk_ids: Sequence[int], item_ids: Sequence[int], scores: Sequence[float]
) -> dict[int, tuple[float, int]]:
    """item -> (best score, its chunk), for chunk lists already sorted best first."""
    best: dict[int, tuple[float, int]] = {}
    for cid, iid, s in zip(chunk_ids, item_ids, scores, strict=True):
        if iid not in best:
            best[iid] = (float(s), int(cid))
    return best


def candidate_items(store: IndexStore, filters: Filters) -> set[int] | None:
    """Items the filters allow; None when nothing filters (every item is a candidate).

    A place matches photos taken within its radius and, for items without GPS (documents,
    photos with no location), items whose text names the place.
    """
    if not filters.narrows:
        return None
    allowed = store.filter_items(filters.kind, filters.time_range, filters.near or None)
    if filters.near and filters.place_names:
        named = store.filter_items(filters.kind, filters.time_range, None)
        if named:
            hits = store.lexical(
                [], limit=CANDIDATES * 5, item_ids=named, phrases=filters.place_names
            )
            allowed |= {iid for _, iid, _ in hits}
    return allowed


def selective_terms(store: IndexStore, terms: list[str]) -> list[str]:
    """The query terms worth a lexical lookup: present in the index, not near-universal,
    rarest first. Prefix terms (a lone CJK character) are kept as they are."""
    plain = [t for t in terms if not is_prefix_term(t)]
    prefixes = [t for t in terms if is_prefix_term(t)]
    df = store.doc_frequencies(plain)
    present = sorted((t for t in plain if df[t] > 0), key=lambda t: df[t])
    limit = MAX_TERM_SHARE * store.chunk_count()
    selective = [t for t in present if df[t] <= limit] or present[:1]
    chosen: list[str] = []
    postings = 0
    for t in selective[:MAX_TERMS]:
        if chosen and postings + df[t] > MAX_POSTINGS:
            break
        chosen.append(t)
        postings += df[t]
    return chosen + prefixes[: max(0, MAX_TERMS - len(chosen))]


def vector_candidates(
    store: IndexStore,
    query_vec: np.ndarray,
    kind: str | None,
    allowed: set[int] | None,
    limit: int = CANDIDATES,
) -> tuple[list[int], list[int], list[float]]:
    """(chunk ids, item ids, cosines) of the nearest chunks, best first."""
    view = store.vectors(kind)
    if not len(view):
        return [], [], []
    sims = view.matrix @ query_vec.astype(np.float32)
    if allowed is not None:
        mask = np.isin(view.item_ids, np.fromiter(allowed, dtype=np.int64, count=len(allowed)))
        sims = np.where(mask, sims, -np.inf)
    k = min(limit, len(sims))
    top = np.argpartition(-sims, k - 1)[:k]
    top = top[np.argsort(-sims[top], kind="stable")]
    top = top[np.isfinite(sims[top])]
    return view.chunk_ids[top].tolist(), view.item_ids[top].tolist(), sims[top].tolist()


def hybrid_search(
    store: IndexStore,
    text: str,
    query_vec: np.ndarray | Callable[[], np.ndarray] | None,
    filters: Filters,
    limit: int = 10,
) -> list[Hit]:
    """The best ``limit`` items for ``text`` (and its embedding) within ``filters``.

    ``query_vec`` may be a function computing the embedding: it then runs beside the lexical
    lookup instead of before it (the encoder, SQLite and numpy all release the GIL).
    """
    allowed = candidate_items(store, filters)
    if allowed is not None and not allowed:
        return []
    terms = query_terms(text) if text.strip() else []
    if not terms and query_vec is None:
        return _newest(store, allowed, filters, limit)

    def vector_side() -> tuple[list[int], list[int], list[float]]:
        assert query_vec is not None
        vec = query_vec() if callable(query_vec) else query_vec
        return vector_candidates(store, vec, filters.kind, allowed)

    vec_future = _POOL.submit(vector_side) if query_vec is not None else None
    lookup = selective_terms(store, terms) if terms else []
    lex = store.lexical(lookup, CANDIDATES, filters.kind, allowed) if lookup else []
    lex_best = _best_per_item([c for c, _, _ in lex], [i for _, i, _ in lex], [s for *_, s in lex])
    vec_best: dict[int, tuple[float, int]] = {}
    if vec_future is not None:
        vec_best = _best_per_item(*vec_future.result())
    lex_rank = {iid: r for r, iid in enumerate(lex_best)}
    vec_rank = {iid: r for r, iid in enumerate(vec_best)}
    top_lex = max((s for s, _ in lex_best.values()), default=0.0)
    fused: dict[int, float] = {}
    for iid in lex_best.keys() | vec_best.keys():
        lexical = lex_best[iid][0] / top_lex if iid in lex_best and top_lex > 0 else 0.0
        cosine = max(vec_best[iid][0], 0.0) if iid in vec_best else 0.0
        fused[iid] = LEXICAL_WEIGHT * lexical + (1.0 - LEXICAL_WEIGHT) * cosine
    ranked = sorted(fused, key=lambda i: (-fused[i], i))[:limit]
    items = store.items(ranked)
    hits = []
    for iid in ranked:
        if iid not in items:  # deleted by an indexer between the lookups and now
            continue
        lex_hit, vector = lex_best.get(iid), vec_best.get(iid)
        chunk = (lex_hit or vector or (0.0, None))[1]
        hit = Hit(
            item=items[iid],
            score=round(fused[iid], 6),
            lexical_rank=lex_rank.get(iid),
            vector_rank=vec_rank.get(iid),
            cosine=round(vector[0], 4) if vector else None,
            chunk_id=chunk,
        )
        hits.append(hit)
    _explain(store, hits, terms, filters)
    return hits


def _newest(store: IndexStore, allowed: set[int] | None, filters: Filters, limit: int) -> list[Hit]:
    ids = allowed if allowed is not None else store.filter_items(filters.kind)
    items = store.items(ids)
    ordered = sorted(items.values(), key=lambda it: (-(it.created_at or 0.0), it.path))[:limit]
    hits = [Hit(item=it, score=0.0) for it in ordered]
    _explain(store, hits, [], filters)
    return hits


def _explain(store: IndexStore, hits: list[Hit], terms: list[str], filters: Filters) -> None:
    """Fill each hit's reasons (text, tag, semantic, time, place) and its snippet."""
    texts = store.chunk_texts([h.chunk_id for h in hits if h.chunk_id is not None])
    lowered = [t.lower() for t in terms]
    for hit in hits:
        it = hit.item
        tag_words = " ".join(
            f"{t.get('label', '')} {t.get('label_zh', '')}" for t in it.tags
        ).lower()
        if lowered and any(t in tag_words for t in lowered):
            matched = [t["label"] for t in it.tags if _mentions(t, lowered)]
            hit.why.append("tag: " + ", ".join(matched[:3]))
        if hit.lexical_rank is not None:
            hit.why.append("text")
        if hit.cosine is not None and hit.cosine >= SEMANTIC_MIN:
            hit.why.append(f"semantic ({hit.cosine:.2f})")
        if filters.time_range is not None and it.created_at is not None:
            hit.why.append("time")
        if filters.near:
            hit.why.append("place" + (f": {_place_name(it)}" if _place_name(it) else ""))
        text = texts.get(hit.chunk_id or -1, "")
        hit.text = text
        hit.snippet = snippet(text, lowered)


def _mentions(tag: dict[str, Any], terms: list[str]) -> bool:
    words = f"{tag.get('label', '')} {tag.get('label_zh', '')}".lower()
    return any(t in words for t in terms)


def _place_name(item: ItemRecord) -> str | None:
    if not item.place:
        return None
    return item.place.get("name")


_SPACE = re.compile(r"\s+")


def snippet(text: str, terms: Sequence[str], width: int = 160) -> str:
    """A window of ``text`` around its first matched term (the start when none matches)."""
    flat = _SPACE.sub(" ", text).strip()
    if len(flat) <= width:
        return flat
    low = flat.lower()
    positions = [p for p in (low.find(t) for t in terms if t) if p >= 0]
    start = max(0, min(positions) - width // 4) if positions else 0
    end = min(len(flat), start + width)
    start = max(0, end - width)
    return ("…" if start else "") + flat[start:end].strip() + ("…" if end < len(flat) else "")
