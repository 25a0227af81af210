"""Segment text into FTS5 terms so one ``unicode61`` table matches English and Chinese alike.

``unicode61`` splits on spaces and punctuation, which leaves a Chinese sentence as one giant
token that no query matches. We segment in Python instead: Latin/digit words are NFKC-normalised
and case-folded; runs of CJK characters (Han, kana, hangul) become overlapping bigrams, the
standard dictionary-free approach for CJK retrieval. The indexed side also emits the last
character of every run as a unigram, so a one-character query ("猫") run as the prefix query
``"猫"*`` finds every occurrence: each character of a run either starts a bigram or ends the run.

Every emitted term consists only of characters ``unicode61`` treats as token characters (the
table declares ``categories 'L* N* Co M*'``), so a term is exactly one FTS token.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Iterator

# Han (with extension A, compatibility ideographs and the supplementary planes), the iteration
# marks, kana and hangul. Written as escapes so the source stays ASCII-readable.
_CJK = (
    "\u3005-\u3007\u3021-\u3029\u3040-\u309f\u30a0-\u30ff\u31f0-\u31ff"
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
    "\u1100-\u11ff\u3130-\u318f\uac00-\ud7af"
    "\U00020000-\U0003134f"
)

# English words too common to help a ranking; removed from queries only (never from the index).
STOPWORDS = frozenset(
    "a an and are as at be by did do does for from had has have i in is it its me my of on or "
    "our that the their them there these they this those to was we were what when where which "
    "who with you your".split()
)
# Bump on any change to what ``index_terms`` emits: the store then rebuilds its FTS index.
SEGMENTATION_VERSION = 1
# Queries longer than this are cut: an OR of hundreds of terms only slows FTS5 down.
MAX_QUERY_TERMS = 64


@functools.cache
def _pattern() -> re.Pattern[str]:
    """Runs of CJK, or words of letters/digits plus combining marks (Devanagari, Thai, ...).

    Python's ``\\w`` leaves out combining marks, which would cut Indic words apart; the mark
    ranges of the Basic Multilingual Plane are collected once, on first use (~15 ms).
    """
    marks: list[str] = []
    start = None
    for cp in range(0x10001):  # one past the plane closes a trailing range
        is_mark = cp < 0x10000 and unicodedata.category(chr(cp)).startswith("M")
        if is_mark and start is None:
            start = cp
        elif not is_mark and start is not None:
            marks.append(f"{re.escape(chr(start))}-{re.escape(chr(cp - 1))}")
            start = None
    # A word starts with a letter or digit (a lone mark would be no token for unicode61) and
    # goes on over letters, digits and marks; CJK is excluded inside the class, not by a
    # per-character lookahead, which tripled the cost of indexing.
    letter = f"[^\\W_{_CJK}]"
    word = f"{letter}(?:{letter}|[{''.join(marks)}])*"
    return re.compile(f"([{_CJK}]+)|({word})")


def _segments(text: str) -> Iterator[tuple[bool, str]]:
    """(is_cjk, run) pairs in text order, after NFKC and case folding."""
    norm = unicodedata.normalize("NFKC", text).casefold()
    for cjk, word in _pattern().findall(norm):
        if cjk:
            yield True, cjk
        else:
            yield False, word


def _bigrams(run: str) -> list[str]:
    if len(run) == 1:
        return [run]
    return [run[i : i + 2] for i in range(len(run) - 1)]


def index_terms(text: str) -> str:
    """Space-separated terms for the FTS5 column, e.g. "我去长城旅游 Great Wall" →
    "我去 去长 长城 城旅 旅游 游 great wall" (the trailing "游" serves one-character queries)."""
    out: list[str] = []
    for is_cjk, run in _segments(text):
        if not is_cjk:
            out.append(run)
            continue
        out.extend(_bigrams(run))
        if len(run) > 1:
            out.append(run[-1])
    return " ".join(out)


def query_terms(text: str) -> list[str]:
    """The same segmentation for a query: de-duplicated, common English words dropped unless
    nothing else is left, capped at ``MAX_QUERY_TERMS``."""
    terms: list[str] = []
    for is_cjk, run in _segments(text):
        terms.extend(_bigrams(run) if is_cjk else [run])
    unique = list(dict.fromkeys(terms))
    kept = [t for t in unique if t not in STOPWORDS]
    return (kept or unique)[:MAX_QUERY_TERMS]


def _is_cjk_char(term: str) -> bool:
    return len(term) == 1 and re.fullmatch(f"[{_CJK}]", term) is not None


def phrase_expression(text: str) -> str:
    """A MATCH phrase for ``text`` as a whole ("Great Wall", "慕田峪长城"): its terms in order,
    so "great" alone or "长城" inside another name does not match. A CJK run is matched by its
    bigrams only (the indexed trailing character is absent when the run continues in the text).
    Quoted like ``match_expression``; "" when the text has no terms."""
    parts: list[str] = []
    for is_cjk, run in _segments(text):
        parts.extend(_bigrams(run) if is_cjk else [run])
    if not parts:
        return ""
    body = " ".join(parts).replace("\x00", "").replace('"', '""')
    return f'"{body}"'


def is_prefix_term(term: str) -> bool:
    """True for terms ``match_expression`` turns into prefix queries (a lone CJK character)."""
    return _is_cjk_char(term)


def match_expression(terms: Iterable[str]) -> str:
    """A MATCH string that user text cannot inject syntax into: every term is a quoted string
    (inner quotes doubled) and terms are OR-ed. A single CJK character becomes a prefix query
    (see the module docstring). Returns "" when there is nothing to match."""
    parts: list[str] = []
    for term in terms:
        term = term.replace("\x00", "")  # SQLite reads the string only up to a NUL
        if not term:
            continue
        quoted = '"' + term.replace('"', '""') + '"'
        parts.append(quoted + "*" if _is_cjk_char(term) else quoted)
    return " OR ".join(parts)
