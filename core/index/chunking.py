"""Split document bodies into retrieval chunks, and build every item's header chunk.

Chunks of ~400-800 characters match what sentence encoders embed well (USE-v3 reads a few
sentences at a time) while keeping snippets readable. Boundaries prefer paragraphs, then
sentence ends, including the Chinese 。！？ which are not followed by a space. One sentence of
overlap carries context across a boundary so a fact split between chunks is still found.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

TARGET = 600
MIN_CHARS = 400
MAX_CHARS = 800
OVERLAP_MAX = 160
MAX_CHUNKS = 200

_PARAGRAPHS = re.compile(r"\n\s*\n")
# A sentence ends at . ! ? ; (followed by space) or at CJK/fullwidth enders (no space needed).
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|(?<=[。！？；…])\s*|\n")


def _sentences(paragraph: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(paragraph) if s and s.strip()]


def _hard_split(text: str, size: int) -> Iterator[str]:
    """Cut an over-long sentence, at the last space before ``size`` when there is one.
    Walks by index: re-slicing the remainder each time is quadratic on a 2 MB line."""
    start = 0
    while len(text) - start > size:
        cut = text.rfind(" ", start + size // 2, start + size)
        cut = cut if cut > start else start + size
        piece = text[start:cut].strip()
        if piece:
            yield piece
        start = cut
    rest = text[start:].strip()
    if rest:
        yield rest


def _units(text: str) -> Iterator[tuple[str, bool]]:
    """(sentence, starts_paragraph) in order, each at most MAX_CHARS long."""
    for para in _PARAGRAPHS.split(text):
        first = True
        for sentence in _sentences(para):
            for piece in _hard_split(sentence, MAX_CHARS):
                yield piece, first
                first = False


def _join(parts: list[str]) -> str:
    # Latin sentences need a space between them; CJK ones read better without.
    out = parts[0]
    for part in parts[1:]:
        sep = "" if out[-1:] in "。！？；…" else " "
        out += sep + part
    return out


def chunk_text(
    text: str,
    *,
    target: int = TARGET,
    max_chars: int = MAX_CHARS,
    max_chunks: int = MAX_CHUNKS,
) -> list[str]:
    """Body chunks of about ``target`` characters (never more than ``max_chars`` plus the
    overlap), at most ``max_chunks`` of them: the rest of a huge document is left out."""
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for unit, new_paragraph in _units(text):
        full = size + len(unit) > max_chars
        # Close at a paragraph boundary once the chunk is big enough, or when it would overflow.
        if current and (full or (new_paragraph and size >= MIN_CHARS) or size >= target):
            chunks.append(_join(current))
            if len(chunks) >= max_chunks:
                return chunks
            tail = current[-1]
            current, size = ([tail], len(tail)) if len(tail) <= OVERLAP_MAX else ([], 0)
        current.append(unit)
        size += len(unit) + 1
    # A close is always followed by a new unit, so what is left is never only overlap.
    if current:
        chunks.append(_join(current))
    return chunks[:max_chunks]


def header_text(
    *,
    title: str | None,
    album: str | None,
    tags: Iterable[dict] = (),
    place: dict | None = None,
    file_name: str,
) -> str:
    """Chunk 0 of every item: what the item is called, where it sits, what it shows and where it
    was taken. For photos this is the only text, so it is what gets embedded and matched."""
    parts: list[str] = []
    for piece in (title, album):
        if piece:
            parts.append(piece)
    labels = [t.get(k) for t in tags for k in ("label", "label_zh")]
    parts.extend(str(label) for label in labels if label)
    if place:
        names = [place.get("name"), place.get("admin1"), *(place.get("names") or [])]
        parts.extend(str(n) for n in names if n)
    parts.append(file_name)
    # Repeats add nothing to matching and skew bm25; keep the first of each.
    return "\n".join(dict.fromkeys(p.strip() for p in parts if p and p.strip()))
