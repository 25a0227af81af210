"""Read documents (txt, Markdown, HTML, PDF) into plain text, treating every file as hostile.

Every failure becomes ``SkipFile(reason)`` with a reason a person can act on; nothing a file
contains can raise anything else out of ``extract``. Sizes are capped before reading, and the
extracted text is capped too, so one huge or malicious file cannot exhaust memory. Photos are
handled by ``aios.index.photos`` (imported lazily so document-only use never loads Pillow).
"""

from __future__ import annotations

import html
import io
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL.Image import Image

MB = 1 << 20
DOC_EXTENSIONS = frozenset({".txt", ".md", ".markdown", ".html", ".htm", ".pdf"})
PHOTO_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif"})


class SkipFile(Exception):
    """This file cannot be indexed; ``reason`` says why (shown to the user, stored in the DB).

    Not an ``AIOSError``: it never leaves the indexer, which records it and moves on."""

    def __init__(self, reason: str, *, retry: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry = retry  # may succeed later with the file unchanged (permissions)


@dataclass(frozen=True)
class Limits:
    """Caps that bound the work and memory one file can cost."""

    max_doc_bytes: int = 20 * MB
    max_photo_bytes: int = 50 * MB
    max_chars: int = 2_000_000
    max_pdf_pages: int = 500
    max_image_pixels: int = 80_000_000  # ~ a 10,000 x 8,000 panorama
    thumb_px: int = 512
    max_chunks: int = 200


@dataclass
class Extracted:
    """What a file holds: ``text`` is the body (empty for photos), ``meta`` holds created_at,
    lat/lon, width/height..., ``image`` a downscaled RGB copy of a photo for tagging."""

    kind: str
    title: str | None
    text: str
    meta: dict[str, Any] = field(default_factory=dict)
    image: Image | None = None


def kind_of(path: Path) -> str | None:
    """'doc', 'photo', or None for a file the index does not read (archives included)."""
    ext = path.suffix.lower()
    if ext in DOC_EXTENSIONS:
        return "doc"
    if ext in PHOTO_EXTENSIONS:
        return "photo"
    return None


def size_cap(kind: str, limits: Limits) -> int:
    return limits.max_photo_bytes if kind == "photo" else limits.max_doc_bytes


def _mb(n: int) -> str:
    return f"{n / MB:.0f} MB" if n >= MB else f"{n} bytes"


def check_size(size: int, kind: str, limits: Limits) -> None:
    cap = size_cap(kind, limits)
    if size > cap:
        raise SkipFile(f"too big: {_mb(size)} > {_mb(cap)}")


def read_bytes(path: Path, kind: str, limits: Limits) -> bytes:
    """The whole file, refusing more than the cap (the file may have grown since ``stat``)."""
    cap = size_cap(kind, limits)
    try:
        with open(path, "rb") as f:
            data = f.read(cap + 1)
    except OSError as exc:
        raise SkipFile(f"cannot read: {exc.strerror or exc}", retry=True) from None
    if len(data) > cap:
        raise SkipFile(f"too big: more than {_mb(cap)}")
    return data


def extract(path: Path, data: bytes, limits: Limits | None = None) -> Extracted:
    """Extract ``data`` (the bytes of ``path``) by the file's extension."""
    limits = limits or Limits()
    ext = path.suffix.lower()
    if ext in PHOTO_EXTENSIONS:
        from aios.index.photos import extract_photo

        return extract_photo(path, data, limits)
    if ext == ".pdf":
        return _pdf(data, limits)
    text = decode_text(data)[: limits.max_chars]
    if ext in (".html", ".htm"):
        return _html(text, limits)
    if ext in (".md", ".markdown"):
        return Extracted("doc", _md_title(text), markdown_to_text(text))
    if ext == ".txt":
        return Extracted("doc", None, text)
    raise SkipFile(f"unsupported file type '{ext}'")


# -- text decoding ----------------------------------------------------------------------------

_BOMS = (
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)


def decode_text(data: bytes) -> str:
    """UTF-8 first; UTF-16 only with a BOM; then GB18030 (Chinese Windows files) and finally
    cp1252/latin-1, which decode anything. NUL bytes mean binary, not text."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(codec)
            except UnicodeDecodeError:
                raise SkipFile(f"invalid {codec} text") from None
    if b"\x00" in data[:8192]:
        raise SkipFile("binary content")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    # GB18030 accepts most byte pairs, so it is only trusted when it yields mostly CJK text;
    # accented Latin text decoded as GB18030 gives a scattering of rare ideographs instead.
    try:
        text = data.decode("gb18030")
        wide = [ord(ch) for ch in text if ord(ch) > 0x7F]
        common = sum(
            0x4E00 <= c <= 0x9FFF or 0x3000 <= c <= 0x303F or 0xFF00 <= c <= 0xFFEF for c in wide
        )
        if wide and common >= 0.9 * len(wide):
            return text
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1")


# -- Markdown -----------------------------------------------------------------------------------

# Every repeat is bounded and stays within a line, so no input can make these regexes
# backtrack quadratically (a 2 MB line of "[" or "*" costs linear time).
_MD_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^[ \t]*(?:```|~~~).*$", re.M), ""),  # fence lines (their code is kept)
    # Brackets and parens are excluded inside, so a run of "[[[[" fails at once at each "[".
    (re.compile(r"!\[([^\[\]\n]{0,300})\]\([^()\n]{0,1000}\)"), r"\1"),  # images → alt
    (re.compile(r"\[([^\[\]\n]{1,300})\]\([^()\n]{0,1000}\)"), r"\1"),  # links → text
    (re.compile(r"^[ \t]*\[[^\[\]\n]{1,300}\]:[ \t]*\S.*$", re.M), ""),  # reference defs
    (re.compile(r"</?[A-Za-z][^<>\n]{0,500}>"), ""),  # inline HTML tags
    (re.compile(r"^[ \t]{0,3}#{1,6}[ \t]*", re.M), ""),  # heading markers
    (re.compile(r"^[ \t]{0,3}>[ \t]?", re.M), ""),  # block quotes
    (re.compile(r"^[ \t]*(?:[-*+]|\d{1,9}[.)])[ \t]+", re.M), ""),  # list bullets
    (re.compile(r"^[ \t]*[-*_=]{3,}[ \t]*$", re.M), ""),  # rules and setext underlines
    (re.compile(r"^[ \t]*\|?(?:[ \t]*:?-{1,}:?[ \t]*\|)+[ \t:-]*$", re.M), ""),  # table rules
    (re.compile(r"[ \t]*\|[ \t]*"), " "),  # table cell bars
    (re.compile(r"(\*\*|__|\*|_|~~|`)(?=\S)([^\n]{1,300}?)(?<=\S)\1"), r"\2"),  # emphasis, code
)


def _strip_comments(text: str) -> str:
    """Drop <!-- ... --> with str.find: linear, where a lazy regex is quadratic on "<!--"*n."""
    out: list[str] = []
    pos = 0
    while (start := text.find("<!--", pos)) != -1:
        end = text.find("-->", start + 4)
        if end == -1:
            break
        out.append(text[pos:start])
        pos = end + 3
    out.append(text[pos:])
    return "".join(out)


def markdown_to_text(text: str) -> str:
    text = _strip_comments(text)
    for pattern, repl in _MD_RULES:
        text = pattern.sub(repl, text)
    return html.unescape(text)


def _md_title(text: str) -> str | None:
    m = re.search(r"^\s{0,3}#\s+(.+?)\s*#*\s*$", text, re.M)
    return m.group(1).strip()[:200] if m else None


# -- HTML ---------------------------------------------------------------------------------------

_SKIP_TAGS = frozenset({"script", "style", "noscript", "template", "svg", "head"})
_BLOCK_TAGS = frozenset(
    "p div br li ul ol tr td th h1 h2 h3 h4 h5 h6 section article header footer "
    "blockquote pre table hr dt dd".split()
)


class _TextParser(HTMLParser):
    def __init__(self, max_chars: int) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.size = 0
        self.max_chars = max_chars
        self.title: list[str] = []
        self._skip = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in _SKIP_TAGS:
            self._skip += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in _SKIP_TAGS:
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title.append(data)
        elif not self._skip and self.size < self.max_chars:
            self.parts.append(data)
            self.size += len(data)


# A "<" with no ">" before the next "<" (or within 2,000 characters) opens nothing: escape it.
# "<![" (CDATA, only meaningful inside SVG/MathML) is escaped too: the parser searches for its
# "]]>" from every occurrence.
_UNCLOSED_LT = re.compile(r"<(?![^<>]{0,2000}>)|<(?=!\[)")


def defuse_html(text: str) -> str:
    """Make markup safe for ``html.parser``, which (before Python 3.13.4) rescans from every
    unterminated construct and so takes minutes on 100 KB of "<a " or "<!--". Comments go
    first (they may hold "<"), then every "<" that closes no tag becomes text."""
    return _UNCLOSED_LT.sub("&lt;", _strip_comments(text))


def _html(text: str, limits: Limits) -> Extracted:
    parser = _TextParser(limits.max_chars)
    try:
        parser.feed(defuse_html(text))
        parser.close()
    except Exception as exc:  # html.parser is lenient; anything else is a corrupt file
        raise SkipFile(f"html: cannot parse ({type(exc).__name__})") from None
    body = re.sub(r"[ \t\r\f\v]+", " ", "".join(parser.parts))
    body = re.sub(r"\s*\n\s*(\n\s*)+", "\n\n", body).strip()
    title = " ".join("".join(parser.title).split())[:200] or None
    return Extracted("doc", title, body[: limits.max_chars])


# -- PDF ----------------------------------------------------------------------------------------


def _pdf(data: bytes, limits: Limits) -> Extracted:
    import logging

    from pypdf import PdfReader

    # pypdf logs every recoverable oddity of a broken file as a warning, which would reach
    # stderr through logging's last-resort handler; quiet it unless the app set a level.
    pypdf_log = logging.getLogger("pypdf")
    if pypdf_log.level == logging.NOTSET:
        pypdf_log.setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise SkipFile("pdf: encrypted")
        pages = reader.pages
        n_pages = len(pages)
        title = None
        try:
            info = reader.metadata
            title = str(info.title).strip()[:200] if info and info.title else None
        except Exception:  # a broken Info dictionary should not cost us the text
            title = None
    except SkipFile:
        raise
    except Exception as exc:  # pypdf raises anything on malicious input
        raise SkipFile(f"pdf: cannot parse ({type(exc).__name__}: {str(exc)[:120]})") from None
    texts: list[str] = []
    size = 0
    failed = 0
    for i in range(min(n_pages, limits.max_pdf_pages)):
        try:
            page_text = pages[i].extract_text() or ""
        except Exception:  # one bad page does not spoil the others
            failed += 1
            continue
        texts.append(page_text)
        size += len(page_text)
        if size >= limits.max_chars:
            break
    if n_pages and failed == min(n_pages, limits.max_pdf_pages):
        raise SkipFile("pdf: no page could be read")
    text = "\n\n".join(texts)[: limits.max_chars]
    return Extracted("doc", title, text, {"pages": n_pages})
