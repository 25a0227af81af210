"""The folder indexer and the file readers: incremental runs, hostile files, crashes.

Real files in tmp_path (PDFs written byte by byte, JPEG/PNG by Pillow), a real SQLite index,
and the cheap deterministic embedder of ``test_index_store``.
"""

from __future__ import annotations

import io
import os
import signal
import sqlite3
import struct
import subprocess
import sys
import textwrap
import threading
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aios.errors import IndexStoreError
from aios.index.extract import Limits, SkipFile, decode_text, extract
from aios.index.indexer import Indexer, walk
from aios.index.photos import gps_position, parse_exif_time
from aios.index.store import IndexStore
from aios.index.textseg import query_terms

from .test_index_store import DIM, fts_in_sync, trigram_embed

REPO = Path(__file__).resolve().parent.parent


class CountingEmbed:
    def __init__(self, fail_on: str | None = None, delay: float = 0.0) -> None:
        self.calls = 0
        self.texts = 0
        self.fail_on = fail_on
        self.delay = delay

    def __call__(self, texts: list[str]) -> np.ndarray:
        if self.fail_on and any(self.fail_on in t for t in texts):
            raise RuntimeError("model rejects this text")
        time.sleep(self.delay)  # a model's latency: lets other threads run meanwhile
        self.calls += 1
        self.texts += len(texts)
        return trigram_embed(texts)


# -- fixtures built at runtime -----------------------------------------------------------------


def pdf_bytes(text: str) -> bytes:
    """A minimal valid one-page PDF showing ``text`` in Helvetica."""
    stream = b"BT /F1 12 Tf 72 712 Td (" + text.encode("latin-1") + b") Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return out


def jpeg_bytes(
    when: str | None = "2023:10:01 14:30:00",
    gps: tuple[float, float] | None = (40.4319, 116.5704),
    size: tuple[int, int] = (640, 480),
    color: tuple[int, int, int] = (180, 40, 40),
) -> bytes:
    """A JPEG with EXIF DateTimeOriginal (Exif IFD) and GPS (GPS IFD)."""
    exif = Image.Exif()
    if when:
        exif[0x0132] = "2001:01:01 00:00:00"  # DateTime: must lose to DateTimeOriginal
        exif.get_ifd(0x8769)[0x9003] = when
    if gps:
        lat, lon = gps
        ifd = exif.get_ifd(0x8825)
        ifd[1], ifd[3] = ("N" if lat >= 0 else "S"), ("E" if lon >= 0 else "W")
        for tag, value in ((2, abs(lat)), (4, abs(lon))):
            deg = int(value)
            minutes = int((value - deg) * 60)
            seconds = round(((value - deg) * 60 - minutes) * 60, 4)
            ifd[tag] = (float(deg), float(minutes), seconds)
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "JPEG", exif=exif, quality=80)
    return buf.getvalue()


def png_bomb_bytes(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose header declares width x height pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
        + chunk(b"IEND", b"")
    )


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return path


@pytest.fixture
def store(tmp_path: Path):
    s = IndexStore(tmp_path / "index.db", model="trigram-test", dim=DIM)
    yield s
    s.close()


def item_ids(store: IndexStore, query: str, kind: str | None = None) -> set[str]:
    hits = store.lexical(query_terms(query), kind=kind)
    items = store.items({i for _, i, _ in hits})
    return {Path(it.path).name for it in items.values()}


# -- readers -----------------------------------------------------------------------------------


def test_decode_text_encodings_and_binary() -> None:
    assert decode_text("长城 café".encode()) == "长城 café"
    assert decode_text("长城旅游笔记，天气很好。".encode("gb18030")) == "长城旅游笔记，天气很好。"
    assert decode_text("hello wörld".encode("utf-16")) == "hello wörld"
    assert decode_text("naïve café".encode("cp1252")) == "naïve café"
    with pytest.raises(SkipFile, match="binary content"):
        decode_text(b"ELF\x00\x01\x02" + b"x" * 100)


def test_extract_markdown_html_pdf(tmp_path: Path) -> None:
    md = extract(
        Path("n.md"),
        b"# Trip notes\n\nWe saw **the Great Wall** and [a temple](http://x.y).\n\n"
        b"```\ncode stays\n```\n| a | b |\n|---|---|\n| 1 | 2 |\n",
    )
    assert md.title == "Trip notes"
    assert "the Great Wall" in md.text and "**" not in md.text and "http" not in md.text
    assert "a temple" in md.text and "code stays" in md.text and "---" not in md.text

    page = (
        "<html><head><title>Beijing  guide</title><style>p{color:red}</style></head>"
        "<body><script>alert('x')</script><h1>Great Wall</h1><p>Mutianyu &amp; Badaling</p>"
        "</body></html>"
    )
    html_doc = extract(Path("g.html"), page.encode())
    assert html_doc.title == "Beijing guide"
    assert "Mutianyu & Badaling" in html_doc.text
    assert "alert" not in html_doc.text and "color" not in html_doc.text

    pdf = extract(Path("a.pdf"), pdf_bytes("Hello PDF about the Great Wall"))
    assert "Great Wall" in pdf.text and pdf.meta["pages"] == 1
    with pytest.raises(SkipFile, match="pdf: cannot parse"):
        extract(Path("b.pdf"), b"%PDF-1.4\n" + bytes(range(256)) * 20)


@pytest.mark.parametrize(
    ("name", "unit"),
    [
        ("x.html", "<a "),
        ("x.html", "<!--"),
        ("x.html", '<a b="'),
        ("x.html", "<![CDATA[>"),
        ("x.md", "["),
        ("x.md", "![x]("),
        ("x.md", "<!--"),
        ("x.txt", "。"),
    ],
)
def test_pathological_markup_is_read_in_linear_time(name: str, unit: str) -> None:
    # Python 3.11's html.parser needs minutes for 100 KB of "<a "; these take well under a
    # second for 300 KB. The bound only has to tell seconds from minutes: 10 s, because a 2 s
    # bound failed once (2.15 s) on a 2-core machine running another test suite beside it.
    data = (unit * (300_000 // len(unit))).encode()
    started = time.perf_counter()
    extract(Path(name), data)
    assert time.perf_counter() - started < 10.0


def test_extract_photo_exif_and_safety() -> None:
    photo = extract(Path("trip/a.jpg"), jpeg_bytes(size=(2000, 1000)))
    assert photo.kind == "photo" and photo.text == ""
    assert photo.meta["lat"] == pytest.approx(40.4319, abs=1e-4)
    assert photo.meta["lon"] == pytest.approx(116.5704, abs=1e-4)
    assert photo.meta["created_at"] == parse_exif_time("2023:10:01 14:30:00")
    assert photo.meta["width"] == 2000 and max(photo.image.size) <= 512
    assert photo.image.mode == "RGB"
    south_west = extract(Path("b.jpg"), jpeg_bytes(gps=(-33.8568, -70.6693)))
    assert south_west.meta["lat"] < 0 and south_west.meta["lon"] < 0
    plain = extract(Path("c.jpg"), jpeg_bytes(when=None, gps=None))
    assert "lat" not in plain.meta and "created_at" not in plain.meta
    exif = Image.Exif()
    exif[0x0112] = 6  # taken with the phone on its side: shown rotated 90 degrees
    buf = io.BytesIO()
    Image.new("RGB", (600, 300)).save(buf, "JPEG", exif=exif)
    assert extract(Path("r.jpg"), buf.getvalue()).image.size == (256, 512)  # upright

    data = jpeg_bytes()
    with pytest.raises(SkipFile, match="truncated or corrupt JPEG"):
        extract(Path("t.jpg"), data[: len(data) // 2])
    with pytest.raises(SkipFile, match="decompression bomb"):
        extract(Path("bomb.png"), png_bomb_bytes())
    with pytest.raises(SkipFile, match="decompression bomb"):
        extract(Path("big.jpg"), data, Limits(max_image_pixels=1000))
    with pytest.raises(SkipFile, match="heic"):
        extract(Path("x.heic"), b"\x00\x00\x00\x18ftypheic" + b"\x00" * 64)


def test_exif_time_and_gps_parsing() -> None:
    assert parse_exif_time("2023:10:01 14:30:00", "+08:00") == 1696141800.0
    assert parse_exif_time("0000:00:00 00:00:00") is None
    assert parse_exif_time("garbage") is None and parse_exif_time(None) is None
    assert gps_position({1: "N", 2: (0.0, 0.0, 0.0), 3: "E", 4: (0.0, 0.0, 0.0)}) is None
    assert gps_position({1: "N", 2: (95.0, 0.0, 0.0), 3: "E", 4: (1.0, 0.0, 0.0)}) is None
    assert gps_position({2: (1.0, 30.0, 0.0), 4: (2.0, 0.0, 0.0), 1: "S", 3: "W"}) == (-1.5, -2.0)


# -- incremental runs -------------------------------------------------------------------------


def test_incremental_add_change_touch_move_delete(store: IndexStore, tmp_path: Path) -> None:
    root = tmp_path / "files"
    write(root / "notes" / "trip.txt", "我们去年夏天去长城旅游，天气很好。")
    write(root / "notes" / "budget.md", "# Budget\n\nQuarterly spreadsheet numbers.")
    write(root / "guide.pdf", pdf_bytes("Mutianyu section of the Great Wall"))
    write(root / "Beijing 2023" / "IMG_0001.jpg", jpeg_bytes())
    write(root / "archive.zip", b"PK\x05\x06" + b"\x00" * 18)
    embed = CountingEmbed()
    places = {"name": "Huairou", "admin1": "Beijing", "cc": "CN", "names": ["慕田峪", "Mutianyu"]}
    progress: list[tuple[int, int, str]] = []
    indexer = Indexer(
        store,
        embed,
        # Models answer with numpy scalars; the index stores plain JSON.
        tag=lambda images: [
            [{"label": "cat", "label_zh": "猫", "score": np.float32(0.9)}] for _ in images
        ],
        geocode=lambda lat, lon: places,
        progress=lambda done, total, path: progress.append((done, total, path)),
    )

    first = indexer.add(root)
    assert (first.new, first.changed, first.unchanged, first.deleted) == (4, 0, 0, 0)
    assert first.ignored == 1 and first.skipped == [] and first.chunks == 7
    assert progress[-1][:2] == (4, 4) and len(progress) == 4
    assert embed.calls == 1  # four small files, one batch
    assert item_ids(store, "长城") == {"trip.txt"}
    assert item_ids(store, "great wall") == {"guide.pdf"}
    assert item_ids(store, "猫", kind="photo") == {"IMG_0001.jpg"}  # tag, Chinese label
    assert item_ids(store, "慕田峪") == {"IMG_0001.jpg"}  # place name from geocode
    photo = store.item_by_path(str(root / "Beijing 2023" / "IMG_0001.jpg"))
    assert photo is not None and photo.album == "Beijing 2023" and photo.place == places
    assert photo.tags == [{"label": "cat", "label_zh": "猫", "score": 0.9}]
    assert photo.created_at == parse_exif_time("2023:10:01 14:30:00")
    assert store.filter_items(kind="photo", near=[(40.43, 116.57, 5)]) == {photo.id}

    again = indexer.add(root)
    assert (again.new, again.unchanged, again.chunks) == (0, 4, 0) and embed.calls == 1

    budget = root / "notes" / "budget.md"
    os.utime(budget, ns=(time.time_ns(), time.time_ns() + 10**9))  # touched, same content
    wall = root / "notes" / "trip.txt"
    write(wall, "长城旅游第二版：我们还去了故宫。")
    moved = root / "Beijing 2023" / "guide renamed.pdf"
    (root / "guide.pdf").rename(moved)
    (root / "Beijing 2023" / "IMG_0001.jpg").unlink()
    write(root / "new.txt", "A brand new note about dumplings.")
    texts_before = embed.texts

    third = indexer.add(root)
    assert (third.new, third.changed, third.moved, third.deleted, third.unchanged) == (
        1,
        1,
        1,
        1,
        1,
    )
    # Only the changed file, the new file and the moved file's header were embedded.
    assert embed.texts - texts_before == 2 + 2 + 1
    assert store.items_under(str(root))[str(budget)][1] == budget.stat().st_mtime_ns
    touched = store.item_by_path(str(budget))
    # Its date came from the mtime, so it moves with it, as a fresh index would read it.
    assert touched is not None and touched.created_at == budget.stat().st_mtime_ns / 1e9
    assert item_ids(store, "故宫") == {"trip.txt"}
    assert item_ids(store, "猫") == set()
    guide = store.item_by_path(str(moved))
    assert guide is not None and guide.album == "Beijing 2023" and guide.title == "guide renamed"
    assert item_ids(store, "mutianyu") == {"guide renamed.pdf"}  # body kept, not re-extracted
    assert item_ids(store, "renamed") == {"guide renamed.pdf"}  # header rebuilt
    assert store.stats()["items"] == {"doc": 4, "photo": 0}
    fts_in_sync(tmp_path / "index.db")


def test_walk_never_follows_symlinks_or_hidden_entries(tmp_path: Path) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    write(outside / "secret.txt", "outside the root")
    write(root / "a.txt", "inside")
    write(root / ".git" / "config.txt", "hidden")
    write(root / "sub" / "b.md", "inside too")
    (root / "link_out").symlink_to(outside, target_is_directory=True)
    (root / "sub" / "loop").symlink_to(root, target_is_directory=True)
    (root / "file_link.txt").symlink_to(outside / "secret.txt")
    fd = os.open(os.fsencode(root) + b"/bad\xffname.txt", os.O_CREAT | os.O_WRONLY, 0o600)
    os.close(fd)
    found = walk(root)
    assert [p.relative_to(root).as_posix() for p, _ in found.files] == ["a.txt", "sub/b.md"]
    assert found.ignored == 4
    assert [Path(n).name for n in found.bad_names] == ["bad\\xffname.txt"]
    store = IndexStore(tmp_path / "index.db")
    try:
        report = Indexer(store, CountingEmbed()).add(root)
    finally:
        store.close()
    assert report.new == 2 and [r for _, r in report.skipped] == [
        "file name is not valid UTF-8 (rename it to index it)"
    ]


def test_bad_files_are_skipped_with_reasons_and_never_lose_data(
    store: IndexStore, tmp_path: Path
) -> None:
    root = tmp_path / "files"
    write(root / "good.txt", "an earlier good document about kites")
    indexer = Indexer(store, CountingEmbed(), limits=Limits(max_doc_bytes=4096))
    assert indexer.add(root).new == 1

    good = jpeg_bytes()
    write(root / "truncated.jpg", good[: len(good) // 2])
    write(root / "broken.pdf", b"%PDF-1.7\n" + bytes(range(256)) * 10)
    write(root / "binary.txt", b"\x7fELF\x02\x01\x01\x00" + os.urandom(512))
    write(root / "huge.txt", "x" * 5000)
    write(root / "bomb.png", png_bomb_bytes())
    write(root / "photo.heic", b"\x00\x00\x00\x18ftypheic" + b"\x00" * 64)
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", b"\x00" * (8 << 20))
    write(root / "bomb.zip", bomb.getvalue())
    locked = write(root / "locked.txt", "permission denied")
    locked.chmod(0)
    write(root / "fine.md", "# Fine\n\nA good new note about sailing.")
    write(root / "fine.jpg", good)

    report = indexer.add(root)
    reasons = {Path(p).name: r for p, r in report.skipped}
    assert reasons["truncated.jpg"].startswith("truncated or corrupt JPEG")
    assert reasons["broken.pdf"].startswith("pdf: cannot parse")
    assert reasons["binary.txt"] == "binary content"
    assert reasons["huge.txt"] == "too big: 5000 bytes > 4096 bytes"
    assert "decompression bomb" in reasons["bomb.png"]
    assert reasons["photo.heic"].startswith("heic")
    assert "bomb.zip" not in reasons and report.ignored == 1
    if os.geteuid() != 0:  # root reads anything
        assert reasons["locked.txt"].startswith("cannot read")
    assert (report.new, report.unchanged) == (3 if os.geteuid() == 0 else 2, 1)
    assert item_ids(store, "kites") == {"good.txt"}
    assert item_ids(store, "sailing") == {"fine.md"}
    assert {Path(p).name for p, _ in store.skipped()} >= {"truncated.jpg", "broken.pdf"}

    # Broken files that did not change are not retried, but still reported.
    embed = CountingEmbed()
    rerun = Indexer(store, embed, limits=Limits(max_doc_bytes=4096)).add(root)
    assert {Path(p).name for p, _ in rerun.skipped} == set(reasons)
    assert embed.calls == 0 and rerun.unchanged == report.new + 1
    # A fixed file is indexed and leaves the skip list; a deleted one leaves it too.
    write(root / "broken.pdf", pdf_bytes("repaired"))
    (root / "binary.txt").unlink()
    fixed = Indexer(store, embed, limits=Limits(max_doc_bytes=4096)).add(root)
    assert fixed.new == 1 and item_ids(store, "repaired") == {"broken.pdf"}
    assert not {"broken.pdf", "binary.txt"} & {Path(p).name for p, _ in store.skipped()}
    locked.chmod(0o600)
    fts_in_sync(tmp_path / "index.db")


def test_an_embedder_failure_on_one_file_skips_only_that_file(
    store: IndexStore, tmp_path: Path
) -> None:
    root = tmp_path / "files"
    write(root / "a.txt", "fine text")
    write(root / "b.txt", "poison text")
    write(root / "c.txt", "more fine text")
    report = Indexer(store, CountingEmbed(fail_on="poison")).add(root)
    assert report.new == 2
    assert [(Path(p).name, r.split(":")[0]) for p, r in report.skipped] == [
        ("b.txt", "embedding failed")
    ]
    write(tmp_path / "more" / "d.txt", "text one")
    write(tmp_path / "more" / "e.txt", "text two")
    with pytest.raises(RuntimeError):  # every file fails: the model is broken, say so
        Indexer(store, CountingEmbed(fail_on="text")).add(tmp_path / "more")


def test_cancel_keeps_committed_work_and_the_next_run_finishes(
    store: IndexStore, tmp_path: Path
) -> None:
    root = tmp_path / "files"
    for i in range(30):
        write(root / f"doc{i:02d}.txt", f"document number {i}")
    cancel = threading.Event()

    def progress(done: int, total: int, path: str) -> None:
        if done >= 10:
            cancel.set()

    report = Indexer(store, CountingEmbed(), progress=progress, cancel=cancel, batch_chunks=4).add(
        root
    )
    assert report.cancelled and 10 <= report.new < 30
    assert len(store.items_under(str(root))) == report.new
    rest = Indexer(store, CountingEmbed(), batch_chunks=4).add(root)
    assert not rest.cancelled and rest.new == 30 - report.new and rest.unchanged == report.new


def test_readers_query_while_the_indexer_writes(store: IndexStore, tmp_path: Path) -> None:
    root = tmp_path / "files"
    for i in range(120):
        write(root / f"n{i:03d}.txt", f"note {i} about harbour walks and tea")
    stop = threading.Event()
    errors: list[BaseException] = []
    counts: list[int] = []

    def reader() -> None:
        try:
            while not stop.is_set():
                counts.append(len(store.lexical(["harbour"], limit=1000)))
                store.vectors("doc")
                store.filter_items(kind="doc")
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        report = Indexer(store, CountingEmbed(delay=0.01), batch_chunks=8).add(root)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not errors and report.new == 120
    assert len(counts) > 3 and counts == sorted(counts)  # saw progress, never went backwards
    assert len(store.lexical(["harbour"], limit=1000)) == 120


def test_add_refuses_a_missing_folder(store: IndexStore, tmp_path: Path) -> None:
    with pytest.raises(IndexStoreError, match="not a folder"):
        Indexer(store, CountingEmbed()).add(tmp_path / "nope")


# -- crash safety ------------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import sys, time, zlib
    from pathlib import Path
    import numpy as np
    from aios.index.indexer import Indexer
    from aios.index.store import IndexStore

    def embed(texts):
        time.sleep(0.05)  # a slow model makes the kill land mid-run
        out = np.zeros((len(texts), 64), np.float32)
        for i, text in enumerate(texts):
            s = f"  {text.lower()} "
            for j in range(len(s) - 2):
                out[i, zlib.crc32(s[j : j + 3].encode()) % 64] += 1.0
        return out

    store = IndexStore(Path(sys.argv[1]), model="trigram-test", dim=64)
    Indexer(store, embed, batch_chunks=8).add(Path(sys.argv[2]))
    """
)


def committed_items(db: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return conn.execute("SELECT COUNT(*) FROM items").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def test_kill_9_midway_leaves_a_consistent_index_that_resumes(tmp_path: Path) -> None:
    root = tmp_path / "files"
    for i in range(200):
        write(root / f"d{i // 50}" / f"note{i:03d}.txt", f"Note {i}: walking by the river.")
    db = tmp_path / "killed.db"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db), str(root)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while committed_items(db) < 40 and time.monotonic() < deadline:
            assert child.poll() is None, "the indexer finished or died before the kill"
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL

    fts_in_sync(db)
    store = IndexStore(db, model="trigram-test", dim=DIM)
    try:
        after_kill = store.stats()
        assert 40 <= sum(after_kill["items"].values()) < 200
        embed = CountingEmbed()
        resumed = Indexer(store, embed, batch_chunks=8).add(root)
        final = store.stats()
    finally:
        store.close()
    clean_store = IndexStore(tmp_path / "clean.db", model="trigram-test", dim=DIM)
    try:
        clean = Indexer(clean_store, CountingEmbed(), batch_chunks=8).add(root)
        clean_stats = clean_store.stats()
    finally:
        clean_store.close()

    assert clean.new == 200
    assert final["items"] == clean_stats["items"] and final["chunks"] == clean_stats["chunks"]
    done = sum(after_kill["items"].values())
    assert resumed.unchanged == done and resumed.new == 200 - done
    # Files committed before the kill were not embedded again.
    assert embed.texts == clean_stats["chunks"] - after_kill["chunks"]
    fts_in_sync(db)


def test_tagger_and_geocoder_failures_cost_only_tags_and_places(
    store: IndexStore, tmp_path: Path
) -> None:
    root = tmp_path / "photos"
    write(root / "a.jpg", jpeg_bytes(color=(10, 10, 10)))
    write(root / "b.jpg", jpeg_bytes(color=(250, 250, 250)))

    def tag(images: list) -> list[list[dict]]:
        if len(images) > 1 or images[0].getpixel((0, 0))[0] < 128:
            raise RuntimeError("tagger crashed")
        return [[{"label": "snow", "label_zh": "雪", "score": 0.7}]]

    def geocode(lat: float, lon: float) -> dict:
        raise OSError("places database missing")

    report = Indexer(store, CountingEmbed(), tag=tag, geocode=geocode).add(root)
    assert report.new == 2 and report.skipped == []
    a = store.item_by_path(str(root / "a.jpg"))
    b = store.item_by_path(str(root / "b.jpg"))
    assert a is not None and a.tags == [] and a.place is None and a.lat is not None
    assert b is not None and [t["label"] for t in b.tags] == ["snow"]
