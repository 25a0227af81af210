"""Query understanding: "去年夏天在杭州拍的照片" -> time, place and kind filters plus the words
left for ranking.

Time expressions (``timeparse``) and gazetteer places (``places``) become filters; kind words
(photos / documents) choose what to search; the remainder loses the glue that only served the
sentence ("photos of ... from", "之前去...时拍的") and keeps the words that carry meaning
("旅游", "trip"), which go to lexical + vector ranking.

Where a place name and a time word overlap, the place wins ("Summer Palace" is not summer).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aios.index.places import PlaceMatch, find_places
from aios.index.timeparse import TimeRange, describe, parse_times

# Kind words. "图" alone is a photo only where it stands as a noun ("长城的图", "几张图"),
# since it is also a syllable of 地图 (map), 图书 (book), 图表 (chart).
KIND_WORDS = {
    "photos": (
        r"(?<![A-Za-z])(?:photo(?:graph)?s?|pictures?|pics?|images?|selfies?|screenshots?)"
        r"(?![A-Za-z])|照片|相片|图片|相册|自拍|截图|(?:(?<=[的张些])|^)图(?=$|[\s，。,.!?！？])"
    ),
    "docs": (
        r"(?<![A-Za-z])(?:notes?|documents?|docs?|files?|pdfs?|papers?)(?![A-Za-z])"
        r"|笔记|文档|文件|资料|记录|备忘录"
    ),
}
KIND_RES = {kind: re.compile(p, re.I) for kind, p in KIND_WORDS.items()}
# An English kind word asks for that kind only where it names what to find: at either end of
# the query ("cat photos", "photos of cats") or before a preposition ("notes about the trip").
# Inside a phrase it is just a word ("image captioning models", "file format") and stays in
# the text to rank by.
_EN_KIND_CONTEXT = re.compile(
    r"\s*(?:$|[,.;:!?]|(?:of|from|in|at|on|about|with|taken|during|for|that|which|i|we)\b)",
    re.I,
)


def _names_a_kind(text: str, m: re.Match[str]) -> bool:
    if not m.group(0).isascii():
        return True
    before = text[: m.start()].strip().lower()
    return (
        not before
        or before.split()[-1] in ("my", "all", "our", "the", "some", "find", "show")
        or _EN_KIND_CONTEXT.match(text, m.end()) is not None
    )


# Glue that carries no meaning for ranking. Chinese glue is stripped only from the edges of a
# run of Chinese text, so it never cuts a word in the middle.
EN_FILLER = frozenset(
    """a an the my our your me i we us of from in on at during taken take took shot shoot with
    for and or to show find search get give display see all some any that which who were was
    is are be been have had i've when while around near there those these this it its please
    about where did do can could""".split()
)
ZH_FILLER = sorted(
    """的时候 时候 之前 以前 那时 当时 拍摄的 拍下的 拍的 拍摄 拍了 拍下 所拍 照的 帮我找 帮我
    给我找 给我看 给我 找一下 找找 查找 搜索 搜一下 查一下 看看 显示 所有 全部 一些 那些 这些
    有关 关于 相关 我们 我的 那次 这次 一下 里面 里的 中的 上的 期间 时 的 在 去 到 我 和 跟 与
    了 从 把 找 张 些 有 是""".split(),
    key=len,
    reverse=True,
)
# Words that end or start with glue but are words themselves ("小时候" is childhood).
ZH_KEEP = ("小时候", "小时", "同时", "目的", "有的")
# A lone locative left after a place is removed ("埃菲尔铁塔下") says nothing to rank by.
ZH_LOCATIVE = frozenset("上下里中内外旁边前后附近")
CJK = r"[\u3400-\u9fff\uf900-\ufaff]"
PHOTO_HINT = re.compile(r"拍的|拍摄|拍下|拍了|(?<![A-Za-z])(?:taken|shot)(?![A-Za-z])", re.I)


@dataclass
class ParsedQuery:
    original: str
    text: str  # the remainder for ranking
    time: TimeRange | None = None
    places: list[PlaceMatch] = field(default_factory=list)
    kind: str | None = None  # "photos" | "docs" | None (both)
    spans: list[tuple[str, int, int]] = field(default_factory=list)  # what was understood
    notes: list[str] = field(default_factory=list)

    @property
    def time_bounds(self) -> tuple[float, float] | None:
        """The time filter as POSIX seconds, the naive range read as local time."""
        if self.time is None:
            return None
        return self.time.start.timestamp(), self.time.end.timestamp()

    @property
    def near(self) -> tuple[tuple[float, float, float], ...]:
        """(lat, lon, radius_km) per distinct place, for distance filters."""
        return tuple(dict.fromkeys((p.lat, p.lon, p.radius_km) for p in self.places))

    @property
    def place_names(self) -> tuple[str, ...]:
        """Every name (both languages) of the places asked for, for matching text."""
        return tuple(dict.fromkeys(n for p in self.places for n in (p.name, *p.names)))

    def to_dict(self) -> dict[str, Any]:
        time = None
        if self.time is not None:
            time = {
                "start": self.time.start.isoformat(),
                "end": self.time.end.isoformat(),
                "label": self.time.label,
            }
        return {
            "query": self.original,
            "text": self.text,
            "time": time,
            "places": [p.to_dict() for p in self.places],
            "kind": self.kind,
            "spans": [list(s) for s in self.spans],
            "notes": list(self.notes),
        }


def _overlaps(span: tuple[int, int], taken: list[tuple[int, int]]) -> bool:
    return any(span[0] < e and s < span[1] for s, e in taken)


def _strip_zh(run: str) -> str:
    """Remove glue from both ends of a run of Chinese text."""
    changed = True
    while run and changed:
        changed = False
        if run in ZH_KEEP:
            break
        for f in ZH_FILLER:
            if run.endswith(f) and not any(run.endswith(k) for k in ZH_KEEP):
                run, changed = run[: -len(f)], True
                break
            if run.startswith(f) and not any(run.startswith(k) for k in ZH_KEEP):
                run, changed = run[len(f) :], True
                break
    return run


def _remainder(text: str, taken: list[tuple[int, int]]) -> str:
    masked = list(text)
    for s, e in taken:
        masked[s:e] = "\0" * (e - s)
    words: list[str] = []
    for segment in "".join(masked).split("\0"):
        for run in re.findall(rf"{CJK}+|[^\s{CJK[1:-1]}]+", segment):
            if re.match(CJK, run):
                if (kept := _strip_zh(run)) and kept not in ZH_LOCATIVE:
                    words.append(kept)
                continue
            for token in re.findall(r"[^\W_]+(?:['’-][^\W_]+)*", run):
                if token.lower() not in EN_FILLER:
                    words.append(token)
    return " ".join(words)


def _is_year(r: TimeRange) -> bool:
    return (r.start.month, r.start.day, r.start.time()) == (1, 1, datetime.min.time()) and (
        r.end == r.start.replace(year=r.start.year + 1)
    )


def _into_year(r: TimeRange, year: int) -> TimeRange | None:
    """``r`` moved by whole years so that it starts in ``year`` (None across Feb 29)."""
    delta = year - r.start.year
    try:
        start, end = r.start.replace(year=year), r.end.replace(year=r.end.year + delta)
    except ValueError:
        return None
    return TimeRange(start, end, describe(start, end))


def _intersect_all(ranges: list[TimeRange]) -> TimeRange | None:
    combined: TimeRange | None = ranges[0]
    for r in ranges[1:]:
        combined = combined.intersect(r) if combined else None
    return combined


def _combine(ranges: list[TimeRange], movable: list[bool], notes: list[str]) -> TimeRange | None:
    """One time filter from several expressions: their intersection. "last year in March"
    gives a bare "March" (this year's) and "last year": a part without a written year
    (``movable``) is read inside the year. Otherwise, when they cannot all hold, the most
    specific one is kept."""
    if not ranges:
        return None
    combined = _intersect_all(ranges)
    years = [r for r in ranges if _is_year(r)]
    if combined is None and len(years) == 1:
        year = years[0].start.year
        moved = [
            r if _is_year(r) or not m else _into_year(r, year)
            for r, m in zip(ranges, movable, strict=True)
        ]
        if all(m is not None for m in moved):
            combined = _intersect_all([m for m in moved if m is not None])
            if combined is not None:
                notes.append(f"read the time expressions together as {combined.label}")
    if combined is None:
        combined = min(ranges, key=lambda r: r.duration)
        notes.append(f"time expressions do not overlap; kept the most specific: {combined.label}")
    return combined


def parse_query(text: str, now: datetime | None = None) -> ParsedQuery:
    """Split a search query into filters (time, places, kind) and the words to rank by."""
    now = now or datetime.now()
    notes: list[str] = []
    spans: list[tuple[str, int, int]] = []
    taken: list[tuple[int, int]] = []

    places = find_places(text)
    for p in places:
        if p.span not in taken:
            taken.append(p.span)
            spans.append((f"place:{p.name}", *p.span))

    times = []
    for t in parse_times(text, now):
        if _overlaps(t.span, taken):
            continue  # part of a place name
        times.append(t)
        taken.append(t.span)
        spans.append((f"time:{t.label}", *t.span))

    kinds: dict[str, None] = {}
    for name, pattern in KIND_RES.items():
        for m in pattern.finditer(text):
            if m.end() > m.start() and not _overlaps(m.span(), taken) and _names_a_kind(text, m):
                taken.append(m.span())
                spans.append((f"kind:{name}", *m.span()))
                kinds[name] = None
    kind: str | None = next(iter(kinds)) if len(kinds) == 1 else None
    if len(kinds) > 1:
        notes.append("both photos and documents named; searching both")
        kind_spans = {sp[1:] for sp in spans if sp[0].startswith("kind:")}
        taken = [t for t in taken if t not in kind_spans]  # the words stay in the ranking
    elif not kinds and PHOTO_HINT.search(text):
        kind = "photos"  # "去年拍的" / "taken in Paris": only photos are taken
        notes.append("kind inferred from a word for taking a picture")

    spans.sort(key=lambda s: s[1])
    return ParsedQuery(
        original=text,
        text=_remainder(text, taken),
        time=_combine(
            [t.range for t in times],
            [not re.search(r"\d{4}", text[t.span[0] : t.span[1]]) for t in times],
            notes,
        ),
        places=places,
        kind=kind,
        spans=spans,
        notes=notes,
    )
