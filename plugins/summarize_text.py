"""Text helpers for the summarization skill (English and Chinese).

The on-device model is a 270M *base* model: short context, no instruction tuning, and a habit
of echoing labels, answering in lists and looping. The deterministic work around it lives here,
stdlib only so the skill stays testable without a model.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence

__all__ = ["chunk_text", "clean_output", "detect_language", "extractive_summary", "split_sentences"]

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef"
_CJK_RE = re.compile(f"[{_CJK}]")
_CJK_RUN_RE = re.compile(f"[{_CJK}]+")
# Ideographs plus CJK/full-width punctuation: no spaces belong between these.
_WIDE = f"{_CJK}\u3000-\u303f\uff00-\uffef"
_WIDE_GAP_RE = re.compile(f"(?<=[{_WIDE}])\\s+(?=[{_WIDE}])")
_BLANK_LINE_RE = re.compile(r"\n\s*\n")
_NEXT_CHAR_RE = re.compile(r"\s*(\S)")
_WORD_BEFORE_RE = re.compile(r"[\s(\"'“‘（\[]")  # what precedes the word before a dot

_EN_TERM = ".!?"
_CLOSERS = "\"'”’」』）)]】》"
_END_RE = re.compile(r"[.!?。！？；｡][.!?。！？；｡\"'”’」』）)\]】》]*")
_COMPLETE_END = set(".!?。！？；…")

# fmt: off
# Never a sentence end: titles and Latin abbreviations almost always continue.
_ABBREV_ALWAYS = frozenset({
    "mr", "mrs", "ms", "dr", "prof", "st", "sr", "jr", "vs", "cf", "e.g", "i.e", "fig", "gen",
    "gov", "sen", "rep", "lt", "col", "capt", "mt", "approx", "dept", "vol", "ph.d"
})
# Often end a sentence too ("... and so on, etc. Then"): split only before a capital.
_ABBREV_SOFT = frozenset({"etc", "inc", "ltd", "co", "corp", "no", "a.m", "p.m"})
# fmt: on
_ACRONYM_RE = re.compile(r"(?:[a-z]\.)+[a-z]")  # u.s, u.k, e.u

_LIST_RE = re.compile(
    r"^\s*(?:\d{1,2}[.)．、）](?!\d)|[一二三四五六七八九十]{1,3}、|[（(]\d{1,2}[)）]|[-*+](?=\s)|[•·●▪‣◦])\s*"
)
_TAG_RE = re.compile(r"</?[A-Za-z][A-Za-z0-9]*(?:\s[^<>]*)?/?>")
_EMPHASIS_RE = re.compile(r"(\*\*|__)(.+?)\1", re.DOTALL)
_STAR_RE = re.compile(r"(?<![\w*])\*(?!\s)([^*\n]+?)(?<!\s)\*(?!\w)")
_DEFAULT_LABELS = ("Summary", "TL;DR", "TLDR", "摘要", "总结", "一句话总结", "概要")

# fmt: off
_STOPWORDS = frozenset({
    "a", "about", "after", "all", "also", "an", "and", "any", "are", "as", "at", "be", "been",
    "but", "by", "can", "could", "did", "do", "does", "for", "from", "had", "has", "have", "he",
    "her", "his", "how", "i", "if", "in", "into", "is", "it", "its", "just", "may", "more", "most",
    "no", "not", "of", "on", "or", "other", "our", "out", "over", "said", "she", "so", "some",
    "than", "that", "the", "their", "them", "then", "there", "these", "they", "this", "those",
    "to", "too", "up", "very", "was", "we", "were", "what", "when", "which", "who", "why", "will",
    "with", "would", "you", "your"
})
# fmt: on
_ZH_STOP_CHARS = "的了是在和与及也都就而这那之其着把被"
_ZH_STOP_RE = re.compile(f"[{_ZH_STOP_CHARS}]")

_JOIN_ALLOWANCE = 1  # tokens a separator may add when two pieces are joined
_MAX_LOOP_WORDS = 30
_MAX_LOOP_CHARS = 60


def starts_list_item(text: str) -> bool:
    """Whether ``text`` opens with a list marker ("1.", "2)", "-", "*", "•", "（3）")."""
    return bool(_LIST_RE.match(text))


def detect_language(text: str) -> str:
    """Return "zh" when CJK ideographs are >= 20% of the letters/ideographs, else "en"."""
    letters = sum(1 for ch in text if ch.isalpha())  # isalpha() is True for ideographs too
    if not letters:
        return "en"
    return "zh" if len(_CJK_RE.findall(text)) / letters >= 0.2 else "en"


def _is_abbreviation(text: str, dot: int, after: int) -> bool:
    word = _WORD_BEFORE_RE.split(text[max(0, dot - 12) : dot])[-1].lower()
    if word in _ABBREV_ALWAYS or _ACRONYM_RE.fullmatch(word):
        return True
    if len(word) == 1 and text[dot - 1].isupper():  # an initial, as in "J. Smith"
        return True
    if word in _ABBREV_SOFT:
        nxt = _NEXT_CHAR_RE.match(text, after)
        return not (nxt and nxt.group(1).isupper())
    return False


def _split_block(block: str) -> list[str]:
    parts: list[str] = []
    start = 0
    for m in _END_RE.finditer(block):
        i, j = m.span()
        if block[i] in _EN_TERM:
            # ASCII marks only end a sentence before a space, the end, or Chinese text;
            # this keeps "3.5", "e.g.," and "example.com" whole.
            nxt = block[j : j + 1]
            if nxt and not nxt.isspace() and not _CJK_RE.match(nxt):
                continue
            if m.group() == "." and _is_abbreviation(block, i, j):
                continue
        parts.append(block[start:j])
        start = j
    parts.append(block[start:])
    return [p.strip() for p in parts if p.strip()]


def split_sentences(text: str) -> list[str]:
    """Split English/Chinese text into stripped sentences that keep their punctuation.

    Blank lines are boundaries too, so headings and list blocks never merge into prose.
    """
    return [s for block in _BLANK_LINE_RE.split(text) for s in _split_block(block)]


def _hard_split(
    sentence: str, max_tokens: int, count_tokens: Callable[[str], int]
) -> list[tuple[str, int]]:
    """Cut an over-long sentence into pieces that fit, preferring a space or comma cut."""
    pieces: list[tuple[str, int]] = []
    rest = sentence.strip()
    while rest:
        total = count_tokens(rest)
        if total <= max_tokens:
            pieces.append((rest, total))
            break
        # Proportional guess first, then binary search for the longest fitting prefix:
        # O(log n) tokenizer calls per piece. lo=1 is assumed to fit so we always progress.
        lo, hi = 1, len(rest) - 1
        mid = max(1, min(hi, len(rest) * max_tokens // total))
        while lo < hi:
            if count_tokens(rest[:mid]) <= max_tokens:
                lo = mid
            else:
                hi = mid - 1
            mid = (lo + hi + 1) // 2
        soft = max(rest[lo // 2 : lo].rfind(c) for c in " \n\t,，、;；:：")
        cut = lo // 2 + soft + 1 if soft >= 0 else lo
        piece = rest[:cut].strip()
        size = count_tokens(piece)
        if size > max_tokens and cut != lo:  # tokenizers are not strictly prefix-monotone
            cut = lo
            piece = rest[:cut].strip()
            size = count_tokens(piece)
        pieces.append((piece, size))
        rest = rest[cut:].lstrip()
    return pieces


def chunk_text(text: str, max_tokens: int, count_tokens: Callable[[str], int]) -> list[str]:
    """Split text into in-order chunks with count_tokens(chunk) <= max_tokens.

    Cuts at paragraphs first, then sentences, and hard-splits a sentence only when it
    alone is too long. Each paragraph/sentence is counted once and sums are estimated,
    so a slow tokenizer is called O(n) times; each packed chunk is verified once.
    """
    if max_tokens < 1:
        raise ValueError("max_tokens must be >= 1")
    sep = "" if detect_language(text) == "zh" else " "
    # (text, tokens, kind): "para" = whole paragraph, "first"/"cont" = parts of a split one.
    units: list[tuple[str, int, str]] = []
    for para in (p.strip() for p in _BLANK_LINE_RE.split(text)):
        if not para:
            continue
        size = count_tokens(para)
        if size <= max_tokens:
            units.append((para, size, "para"))
            continue
        kind = "first"
        for sent in split_sentences(para):
            size = count_tokens(sent)
            fits = size <= max_tokens
            parts = [(sent, size)] if fits else _hard_split(sent, max_tokens, count_tokens)
            for part, part_size in parts:
                units.append((part, part_size, kind))
                kind = "cont"

    chunks: list[str] = []

    def emit(parts: list[tuple[str, int, str]]) -> None:
        joined = parts[0][0] + "".join(
            (sep if kind == "cont" else "\n\n") + part for part, _, kind in parts[1:]
        )
        if len(parts) == 1 or count_tokens(joined) <= max_tokens:
            chunks.append(joined)
            return
        mid = len(parts) // 2  # estimate was off: halve until each half verifies
        emit(parts[:mid])
        emit(parts[mid:])

    current: list[tuple[str, int, str]] = []
    used = 0
    for unit in units:
        need = unit[1] + (_JOIN_ALLOWANCE if current else 0)
        # A paragraph that must be split starts a fresh chunk so cuts stay at paragraphs.
        if current and (used + need > max_tokens or unit[2] == "first"):
            emit(current)
            current, used, need = [], 0, unit[1]
        current.append(unit)
        used += need
    if current:
        emit(current)
    return chunks


def _collapse(text: str) -> str:
    """Single spaces, none between Chinese characters/punctuation (joins wrapped lines too)."""
    return _WIDE_GAP_RE.sub("", re.sub(r"\s+", " ", text)).strip()


def _is_complete(sentence: str) -> bool:
    return sentence.rstrip(_CLOSERS)[-1:] in _COMPLETE_END


def _terminate(item: str, lang: str) -> str:
    item = item.strip().rstrip(",;:，；、：").strip()
    if not item or _is_complete(item):
        return item
    return item + ("。" if lang == "zh" else ".")


def _strip_labels(text: str, labels: Sequence[str]) -> str:
    cores = {label.strip().rstrip(":：").strip() for label in (*labels, *_DEFAULT_LABELS)}
    alternatives = "|".join(re.escape(c) for c in sorted(cores - {""}, key=len, reverse=True))
    # Require a colon or line break so prose that merely starts with the word survives.
    pattern = re.compile(rf"^\s*(?:{alternatives})\s*(?:[:：]|\n)\s*", re.IGNORECASE)
    while (stripped := pattern.sub("", text, count=1)) != text:
        text = stripped
    return text


def _first_block(text: str, source: str) -> str:
    """First paragraph; a leading list (items may be blank-line separated) becomes prose."""
    blocks = [b.strip() for b in _BLANK_LINE_RE.split(text) if b.strip()]
    if not blocks:
        return ""
    # "Key points:" / "The council decided:" followed by a list stays as the lead-in.
    intro, _, rest = blocks[0].partition("\n")
    if intro.rstrip().endswith((":", "：")) and _LIST_RE.match(rest or "".join(blocks[1:2])):
        blocks[0:1] = [rest.strip()] if rest.strip() else []
    elif not _LIST_RE.match(blocks[0]):
        return blocks[0]
    else:
        intro = ""
    items: list[str] = []
    for block in blocks:
        lines = [ln.strip() for ln in block.splitlines() if ln.strip()]
        if not _LIST_RE.match(lines[0]):
            break
        for line in lines:
            if _LIST_RE.match(line):
                items.append(_LIST_RE.sub("", line, count=1))
            else:
                items[-1] += " " + line  # wrapped continuation of the previous item
    body = " ".join(items)
    lang = detect_language(body if any(c.isalpha() for c in body) else source)
    return " ".join([intro.strip(), *(_terminate(item, lang) for item in items)])


def _find_loop(
    seq: Sequence[str], min_n: int, max_n: int, valid: Callable[..., bool]
) -> tuple[int, int] | None:
    """(end of first copy, end of repeats) of the first unit repeated 3+ times in a row."""
    for i in range(len(seq)):
        for n in range(min_n, max_n + 1):
            reps = 3 if n >= 3 else 4  # a word twice in a row can be legitimate
            if i + reps * n > len(seq):
                break
            unit = seq[i : i + n]
            if seq[i + n : i + 2 * n] != unit or not valid(unit):
                continue
            if all(seq[i + k * n : i + (k + 1) * n] == unit for k in range(2, reps)):
                end = i + reps * n
                while seq[end : end + n] == unit:
                    end += n
                tail = seq[end:]  # a trailing partial copy is the loop cut off by the limit
                return i + n, len(seq) if tail == unit[: len(tail)] else end
    return None


def _is_cjk_unit(unit: str) -> bool:
    return bool(_CJK_RE.match(unit)) and len(_CJK_RE.findall(unit)) >= 4


def _cut_loops(text: str) -> str:
    """Collapse looping phrases to their first occurrence."""
    while True:
        spans = list(re.finditer(r"\S+", text))
        words = [re.sub(r"[\W_]+", "", m.group().lower()) for m in spans]
        found = _find_loop(words, 1, _MAX_LOOP_WORDS, all)
        if found:
            resume = spans[found[1]].start() if found[1] < len(spans) else len(text)
            text = text[: spans[found[0]].start()] + text[resume:]
            continue
        # Chinese has no spaces to split words on: look for 4+ ideographs repeating instead.
        # Units must start with an ideograph so a copy ends on its punctuation, not before it.
        found = _find_loop(text, 4, _MAX_LOOP_CHARS, _is_cjk_unit)
        if not found:
            return text
        text = text[: found[0]] + text[found[1] :]


def _near_duplicate(new: str, old: str) -> bool:
    if new == old or (len(new) >= 4 and new in old):
        return True
    # An earlier sentence inside a new one is a repeat only if it is most of it.
    if len(old) >= 6 and old in new and len(old) >= 0.6 * len(new):
        return True
    a = {new[i : i + 2] for i in range(len(new) - 1)}
    b = {old[i : i + 2] for i in range(len(old) - 1)}
    return bool(a and b) and len(a & b) / len(a | b) >= 0.8


def clean_output(text: str, *, prompt_labels: Sequence[str] = (), source: str = "") -> str:
    """Clean a raw base-model completion into one short prose block.

    `source` (the summarized text) only serves as a language hint when the output has
    no letters to judge by. Returns "" when nothing meaningful remains.
    """
    text = text.replace("\r\n", "\n").lstrip()
    text = _TAG_RE.sub("", text)
    text = _STAR_RE.sub(r"\1", _EMPHASIS_RE.sub(r"\2", text))
    text = _strip_labels(re.sub(r"^[ \t]*#{1,6}\s+", "", text, flags=re.MULTILINE), prompt_labels)
    body = _cut_loops(_collapse(_first_block(text.lstrip(), source)))
    kept: list[str] = []
    norms: list[str] = []
    for sentence in split_sentences(body):
        norm = re.sub(r"[\W_]+", "", sentence.lower())
        if norm and not any(_near_duplicate(norm, old) for old in norms):
            kept.append(sentence)
            norms.append(norm)
    if len(kept) > 1 and not _is_complete(kept[-1]) and any(map(_is_complete, kept[:-1])):
        kept.pop()
    result = _collapse(" ".join(kept))
    if result[-1:] in ",，、;:：":  # a loop cut mid-sentence leaves a dangling clause mark
        result = _terminate(result, detect_language(result))
    return result if re.search(r"[^\W_]", result) else ""


def _terms(sentence: str, lang: str) -> list[str]:
    words = [
        w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w  # crude plural
        for w in re.findall(r"[a-z0-9]+", sentence.lower())
        if len(w) > 1 and w not in _STOPWORDS
    ]
    if lang != "zh":
        return words
    # Function characters split runs, so no bigram straddles a dropped character.
    bigrams = [
        piece[i : i + 2]
        for run in _CJK_RUN_RE.findall(sentence)
        for piece in _ZH_STOP_RE.split(run)
        for i in range(len(piece) - 1)
    ]
    return bigrams + words


def extractive_summary(text: str, *, max_sentences: int, language: str | None = None) -> str:
    """Pick the `max_sentences` most central sentences, in original order (no model).

    A sentence scores the sum of the document-normalized frequencies of its distinct
    content terms, divided by sqrt(term count) so long sentences do not always win,
    times a mild bonus for appearing early. Ties go to the earlier sentence.
    """
    sentences = [_collapse(s) for s in split_sentences(text)]
    if max_sentences <= 0 or not sentences:
        return ""
    lang = language or detect_language(text)
    if len(sentences) > max_sentences:
        all_terms = [_terms(s, lang) for s in sentences]
        freq = Counter(t for ts in all_terms for t in ts)
        terms = [set(ts) for ts in all_terms]
        top = max(freq.values(), default=1)
        n = len(sentences)
        scores = [
            sum(freq[t] for t in ts) / top / max(len(ts), 1) ** 0.5 * (1 + 0.2 * (1 - i / n))
            for i, ts in enumerate(terms)
        ]
        chosen = sorted(sorted(range(n), key=lambda i: (-scores[i], i))[:max_sentences])
        sentences = [sentences[i] for i in chosen]
    return ("" if lang == "zh" else " ").join(sentences)
