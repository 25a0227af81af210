"""The on-device index store: segmentation, FTS5 (Chinese and English), vectors, filters.

Real SQLite files in tmp_path. Embeddings come from a cheap deterministic embedder (hashed
character trigrams): these tests check storage and retrieval mechanics, not model quality.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from aios.errors import AIOSError, IndexStoreError
from aios.index.chunking import chunk_text, header_text
from aios.index.store import ChunkRecord, IndexStore, ItemRecord
from aios.index.textseg import index_terms, match_expression, query_terms

DIM = 64


def trigram_embed(texts: list[str]) -> np.ndarray:
    """Deterministic 64-d embedding: hashed character trigrams, L2-normalised."""
    out = np.zeros((len(texts), DIM), np.float32)
    for i, text in enumerate(texts):
        s = f"  {text.lower()} "
        for j in range(len(s) - 2):
            out[i, zlib.crc32(s[j : j + 3].encode()) % DIM] += 1.0
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms == 0, 1, norms)


def make_item(path: str, kind: str = "doc", **kw: object) -> ItemRecord:
    fields: dict = dict(
        path=path,
        root=str(Path(path).parent),
        kind=kind,
        size=10,
        mtime_ns=1,
        sha256="sha-" + path,
        title=Path(path).stem,
    )
    fields.update(kw)
    return ItemRecord(**fields)


def add_doc(store: IndexStore, path: str, *bodies: str, kind: str = "doc", **kw: object) -> int:
    item = make_item(path, kind, **kw)
    texts = [header_text(title=item.title, album=None, file_name=Path(path).name), *bodies]
    vecs = trigram_embed(texts)
    chunks = [ChunkRecord(i, t, vecs[i]) for i, t in enumerate(texts)]
    return store.upsert_item(item, chunks)


@pytest.fixture
def store(tmp_path: Path):
    s = IndexStore(tmp_path / "index.db", model="trigram-test", dim=DIM)
    yield s
    s.close()


def fts_in_sync(db: Path) -> None:
    """The database is sound and the FTS index holds exactly the terms of the chunks."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.create_function("index_terms", 1, index_terms, deterministic=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('integrity-check')")
        # integrity-check does not compare an external-content index with its content (3.40):
        # read the index itself through fts5vocab and compare with the chunks.
        conn.execute(
            "CREATE VIRTUAL TABLE temp.fts_vocab USING fts5vocab(main, chunks_fts, instance)"
        )
        indexed = dict(conn.execute("SELECT doc, COUNT(*) FROM fts_vocab GROUP BY doc"))
        expected = {
            cid: len(index_terms(text).split()) + 1  # + the kind column's token
            for cid, text in conn.execute("SELECT id, text FROM chunks")
        }
        assert indexed == {cid: n for cid, n in expected.items() if n}
        headless = conn.execute(
            "SELECT COUNT(*) FROM items WHERE id NOT IN (SELECT item_id FROM chunks WHERE ord = 0)"
        ).fetchone()[0]
        assert headless == 0
    finally:
        conn.close()


# -- segmentation ---------------------------------------------------------------------------


def test_index_terms_bigrams_cjk_and_folds_latin() -> None:
    assert index_terms("我去长城旅游 Great Wall") == "我去 去长 长城 城旅 旅游 游 great wall"
    assert index_terms("猫") == "猫"
    # NFKC folds fullwidth letters; case folding; underscores and punctuation split words.
    assert index_terms("ＡＢＣ Straße IMG_2024.jpg") == "abc strasse img 2024 jpg"
    # Combining marks stay inside their word (Devanagari), kana and hangul are bigrammed.
    assert index_terms("नमस्ते") == "नमस्ते"
    assert index_terms("東京タワー 서울") == "東京 京タ タワ ワー ー 서울 울"


def test_query_terms_dedupes_and_drops_stopwords_unless_empty() -> None:
    assert query_terms("the photos of the Great Wall 长城 长城") == [
        "photos",
        "great",
        "wall",
        "长城",
    ]
    assert query_terms("the of") == ["the", "of"]
    assert query_terms("万里长城") == ["万里", "里长", "长城"]
    assert query_terms("  ...  ") == []


def test_match_expression_quotes_everything() -> None:
    assert match_expression(['a"b', "猫", "长城"]) == '"a""b" OR "猫"* OR "长城"'
    assert match_expression([]) == ""


# -- FTS -------------------------------------------------------------------------------------


def test_chinese_query_finds_chinese_doc_and_english_finds_english(store: IndexStore) -> None:
    zh = add_doc(store, "/d/zh.txt", "我们去年夏天去长城旅游，天气很好。")
    en = add_doc(store, "/d/en.txt", "Last summer we hiked the Great Wall near Beijing.")
    cat = add_doc(store, "/d/cat.txt", "我的小猫")
    other = add_doc(store, "/d/other.txt", "Quarterly budget spreadsheet notes.")

    hits = store.lexical(query_terms("长城旅游"))
    assert hits and hits[0][1] == zh
    assert {item for _, item, _ in hits} == {zh}
    hits = store.lexical(query_terms("great wall"))
    assert hits[0][1] == en and other not in {i for _, i, _ in hits}
    # One Chinese character ends a run ("小猫"): found through the trailing unigram.
    assert {i for _, i, _ in store.lexical(query_terms("猫"))} == {cat}
    # Scores are negated bm25: higher is better, sorted best first.
    scores = [s for _, _, s in store.lexical(["great", "wall", "budget"])]
    assert scores == sorted(scores, reverse=True) and all(s > 0 for s in scores)


@pytest.mark.parametrize(
    "query",
    ['NEAR(a b) OR "', "title:secret", "*", "a AND OR NOT (", '"""', "col : ^x", "\x00"],
)
def test_user_text_cannot_inject_fts_syntax(store: IndexStore, query: str) -> None:
    add_doc(store, "/d/a.txt", "a secret title")
    store.lexical(query_terms(query))  # must not raise
    store.lexical([query])  # even unsegmented text is quoted safely


def test_lexical_filters_by_kind_and_item_ids(store: IndexStore) -> None:
    doc = add_doc(store, "/d/beach.txt", "beach trip notes")
    photo = add_doc(store, "/p/beach.jpg", kind="photo")
    both = {i for _, i, _ in store.lexical(["beach"])}
    assert both == {doc, photo}
    assert {i for _, i, _ in store.lexical(["beach"], kind="photo")} == {photo}
    assert {i for _, i, _ in store.lexical(["beach"], item_ids=[doc])} == {doc}
    assert store.lexical(["beach"], item_ids=[]) == []
    assert {i for _, i, _ in store.lexical(["beach"], kind="doc", item_ids=[doc, photo])} == {doc}
    assert len(store.lexical(["beach"], limit=1)) == 1
    # The kind lives in its own FTS column: the words "photo"/"doc" never match it.
    assert store.lexical(["photo"]) == [] and store.lexical(["doc"], kind="doc") == []
    # Filtering by kind does not change scores.
    by_kind = store.lexical(["beach"], kind="photo")
    assert by_kind == [h for h in store.lexical(["beach"]) if h[1] == photo]
    with pytest.raises(IndexStoreError, match="unknown item kind"):
        store.lexical(["beach"], kind="video")


def test_upsert_replaces_previous_version_and_delete_keeps_fts_in_sync(
    store: IndexStore, tmp_path: Path
) -> None:
    first = add_doc(store, "/d/a.txt", "old words here", "second old chunk")
    again = add_doc(store, "/d/a.txt", "new words only")
    assert first == again
    assert store.lexical(["old"]) == []
    assert [i for _, i, _ in store.lexical(["new"])] == [first]
    assert store.stats()["chunks"] == 2
    fts_in_sync(tmp_path / "index.db")
    store.record_skip("/d/a.txt", "whatever")
    add_doc(store, "/d/a.txt", "fixed")
    assert store.skipped() == []  # indexing a path clears its skip
    assert store.delete_paths(["/d/a.txt", "/d/missing.txt"]) == 1
    assert store.lexical(["new"]) == [] and store.stats()["chunks"] == 0
    fts_in_sync(tmp_path / "index.db")


def test_move_item_keeps_id_and_body(store: IndexStore) -> None:
    item_id = add_doc(store, "/d/a.txt", "unique body words")
    header = ChunkRecord(0, "a\ntrip\na.txt", trigram_embed(["a trip"])[0])
    assert (
        store.move_item("/d/a.txt", "/d/trip/a.txt", "/d", album="trip", header=header) == item_id
    )
    moved = store.items([item_id])[item_id]
    assert moved.path == "/d/trip/a.txt" and moved.album == "trip"
    assert [i for _, i, _ in store.lexical(["unique"])] == [item_id]
    assert [i for _, i, _ in store.lexical(["trip"])] == [item_id]
    assert store.move_item("/d/none.txt", "/d/x.txt", "/d") is None
    assert set(store.items_under("/d")) == {"/d/trip/a.txt"}
    assert store.items_under("/d/trip") == {"/d/trip/a.txt": (10, 1, "sha-/d/a.txt")}
    assert store.items_under("/d/tr") == {}  # a prefix of a name is not a parent folder


# -- vectors ---------------------------------------------------------------------------------


def test_vectors_cached_until_a_write_then_rebuilt(store: IndexStore, tmp_path: Path) -> None:
    a = add_doc(store, "/d/a.txt", "alpha")
    view = store.vectors()
    assert store.vectors() is view  # cached
    with pytest.raises(ValueError):
        view.matrix[0, 0] = 2.0  # shared by every caller: read-only
    assert view.matrix.dtype == np.float32 and view.matrix.shape == (2, DIM)
    assert np.allclose(np.linalg.norm(view.matrix, axis=1), 1.0, atol=1e-3)
    assert set(view.item_ids.tolist()) == {a}
    # float16 storage keeps cosine similarity to ~1e-3.
    expected = trigram_embed(["alpha"])[0]
    row = view.matrix[view.chunk_ids.tolist().index(max(view.chunk_ids))]
    assert float(row @ expected) > 0.999

    p = add_doc(store, "/p/b.jpg", kind="photo")
    after = store.vectors()
    assert after is not view and len(after) == 3
    photos = store.vectors("photo")
    assert set(photos.item_ids.tolist()) == {p} and len(photos) == 1
    assert store.vectors("photo") is photos

    # A write through another connection (another process would look the same) invalidates.
    other = IndexStore(tmp_path / "index.db")
    try:
        add_doc(other, "/d/c.txt", "gamma")
    finally:
        other.close()
    assert len(store.vectors()) == 5
    store.delete_paths(["/d/a.txt"])
    assert a not in store.vectors().item_ids


def test_refreshed_vector_cache_equals_a_fresh_load(store: IndexStore, tmp_path: Path) -> None:
    for i in range(6):
        add_doc(store, f"/d/{i}.txt", f"body {i}", f"more {i}", kind="photo" if i % 2 else "doc")
    store.vectors()
    add_doc(store, "/d/7.txt", "appended")  # only appends: rows go into spare capacity
    before = store.vectors()
    snapshot = (before.chunk_ids.copy(), before.matrix.copy())
    add_doc(store, "/d/8.txt", "appended again")
    assert len(store.vectors()) == len(before) + 2
    # A view handed out earlier is never changed by a later refresh.
    assert np.array_equal(before.chunk_ids, snapshot[0])
    assert np.array_equal(before.matrix, snapshot[1])
    store.vectors("photo")
    add_doc(store, "/d/2.txt", "replaced body")  # new chunk ids for an old item
    store.delete_paths(["/d/3.txt"])
    add_doc(store, "/d/9.txt", "new one", kind="photo")
    fresh = IndexStore(tmp_path / "index.db")
    try:
        for kind in (None, "doc", "photo"):
            got, want = store.vectors(kind), fresh.vectors(kind)
            assert got.chunk_ids.tolist() == want.chunk_ids.tolist()
            assert got.item_ids.tolist() == want.item_ids.tolist()
            assert np.array_equal(got.matrix, want.matrix)
    finally:
        fresh.close()
    # Re-indexing with another model (a new dimension) rebuilds the cache from scratch.
    store.clear()
    other = IndexStore(tmp_path / "index.db", model="bigger", dim=8)
    try:
        other.upsert_item(make_item("/d/x.txt"), [ChunkRecord(0, "x", np.ones(8))])
    finally:
        other.close()
    assert store.vectors().matrix.shape == (1, 8)


def test_vectors_of_an_empty_index(store: IndexStore) -> None:
    view = store.vectors("doc")
    assert len(view) == 0 and view.matrix.shape[0] == 0


# -- model, schema -----------------------------------------------------------------------------


def test_refuses_another_embedding_model_or_dimension(tmp_path: Path) -> None:
    db = tmp_path / "index.db"
    IndexStore(db, model="use-v3", dim=512).close()
    with pytest.raises(IndexStoreError, match="re-index"):
        IndexStore(db, model="other-model", dim=512)
    with pytest.raises(IndexStoreError, match="re-index") as info:
        IndexStore(db, model="use-v3", dim=384)
    assert isinstance(info.value, AIOSError)
    store = IndexStore(db)  # no model given: opens for reading
    with pytest.raises(IndexStoreError, match="dimensions"):
        add_doc(store, "/d/a.txt", "text")  # 64-d vectors into a 512-d index
    store.clear()
    store.close()
    IndexStore(db, model="other-model", dim=64).close()  # cleared: a new model may start


def test_refuses_a_newer_schema_and_a_non_database(tmp_path: Path) -> None:
    db = tmp_path / "index.db"
    IndexStore(db).close()
    conn = sqlite3.connect(db)
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(IndexStoreError, match="newer"):
        IndexStore(db)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(IndexStoreError, match="junk.db"):
        IndexStore(junk)


def test_fts_is_rebuilt_when_the_segmentation_changes(store: IndexStore, tmp_path: Path) -> None:
    add_doc(store, "/d/a.txt", "我们去长城 and the Great Wall")
    store.close()
    conn = sqlite3.connect(tmp_path / "index.db")
    # As if indexed by an older segmenter (another Python's Unicode tables).
    conn.execute("UPDATE meta SET value = 'old' WHERE key = 'segmenter'")
    conn.commit()
    conn.close()
    reopened = IndexStore(tmp_path / "index.db")
    try:
        assert reopened._meta("segmenter") != "old"
        assert len(reopened.lexical(query_terms("长城"))) == 1
        reopened.delete_paths(["/d/a.txt"])
    finally:
        reopened.close()
    fts_in_sync(tmp_path / "index.db")


def test_database_pragmas(store: IndexStore, tmp_path: Path) -> None:
    conn = store._conn()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL


# -- filters -----------------------------------------------------------------------------------


def test_filter_items_by_kind_time_and_distance(store: IndexStore) -> None:
    great_wall = add_doc(
        store, "/p/wall.jpg", kind="photo", created_at=1_690_000_000.0, lat=40.43, lon=116.57
    )
    forbidden_city = add_doc(
        store, "/p/city.jpg", kind="photo", created_at=1_700_000_000.0, lat=39.916, lon=116.397
    )
    paris = add_doc(
        store, "/p/paris.jpg", kind="photo", created_at=1_700_000_100.0, lat=48.858, lon=2.294
    )
    fiji = add_doc(store, "/p/fiji.jpg", kind="photo", created_at=1.0, lat=-17.7, lon=179.9)
    doc = add_doc(store, "/d/a.txt", "text", created_at=1_700_000_050.0)

    assert store.filter_items(kind="photo") == {great_wall, forbidden_city, paris, fiji}
    assert store.filter_items(time_range=(1_695_000_000, None)) == {forbidden_city, paris, doc}
    assert store.filter_items(kind="photo", time_range=(None, 1_700_000_050)) == {
        great_wall,
        forbidden_city,
        fiji,
    }
    # ~60 km between the Great Wall at Mutianyu and the Forbidden City.
    assert store.filter_items(near=[(39.9042, 116.4074, 20)]) == {forbidden_city}
    assert store.filter_items(near=[(39.9042, 116.4074, 80)]) == {great_wall, forbidden_city}
    assert store.filter_items(near=[(39.9, 116.4, 80), (48.85, 2.35, 10)]) == {
        great_wall,
        forbidden_city,
        paris,
    }
    # Across the antimeridian: a point at -179.9 is ~20 km from Fiji's 179.9.
    assert store.filter_items(near=[(-17.7, -179.95, 50)]) == {fiji}
    assert store.filter_items(kind="doc", near=[(39.9, 116.4, 1000)]) == set()
    with pytest.raises(IndexStoreError):
        store.filter_items(near=[(95.0, 0.0, 1)])


def test_stats(store: IndexStore) -> None:
    add_doc(store, "/d/a.txt", "one", "two")
    add_doc(store, "/p/b.jpg", kind="photo")
    store.record_skip("/d/bad.pdf", "pdf: cannot parse")
    stats = store.stats()
    assert stats["items"] == {"doc": 1, "photo": 1}
    assert stats["chunks"] == 4 and stats["skipped"] == 1
    assert stats["db_bytes"] > 0 and stats["last_indexed_at"] > time.time() - 60
    assert stats["embed_model"] == "trigram-test" and stats["embed_dim"] == DIM
    assert store.skipped() == [("/d/bad.pdf", "pdf: cannot parse")]


# -- concurrency -------------------------------------------------------------------------------


def test_reads_from_another_thread_while_a_write_transaction_is_open(store: IndexStore) -> None:
    add_doc(store, "/d/a.txt", "committed words")
    seen: dict[str, object] = {}

    def reader() -> None:
        seen["hits"] = store.lexical(["committed"]) + store.lexical(["pending"])
        seen["vectors"] = len(store.vectors())

    with store.transaction():
        add_doc(store, "/d/b.txt", "pending words")
        thread = threading.Thread(target=reader)
        thread.start()
        thread.join(timeout=10)
        assert not thread.is_alive(), "a reader blocked on the open write transaction"
    assert len(seen["hits"]) == 1  # the uncommitted write is invisible
    assert seen["vectors"] == 2
    assert len(store.lexical(["pending"])) == 1  # and visible once committed


def test_a_failed_transaction_rolls_back_everything(store: IndexStore, tmp_path: Path) -> None:
    add_doc(store, "/d/a.txt", "kept")
    with pytest.raises(RuntimeError), store.transaction():
        add_doc(store, "/d/b.txt", "lost")
        store.delete_paths(["/d/a.txt"])
        raise RuntimeError("crash")
    assert [i.path for i in store.items(store.filter_items()).values()] == ["/d/a.txt"]
    fts_in_sync(tmp_path / "index.db")


# -- chunking ----------------------------------------------------------------------------------


def test_chunk_text_sizes_boundaries_overlap_and_cap() -> None:
    english = " ".join(f"Sentence number {i} says something useful." for i in range(200))
    chunks = chunk_text(english)
    assert len(chunks) > 5
    assert all(len(c) <= 800 + 160 for c in chunks)
    assert all(c.endswith(".") for c in chunks)  # cut at sentence ends
    assert chunks[0].split(". ")[-1] in chunks[1]  # one sentence of overlap

    chinese = "我们去年夏天去了长城。天气很好，风景很美！你去过吗？" * 60
    zh = chunk_text(chinese)
    assert len(zh) > 2 and all(300 <= len(c) <= 960 for c in zh[:-1])
    assert all(c[-1] in "。！？" for c in zh)

    assert len(chunk_text(english * 50, max_chunks=7)) == 7
    assert chunk_text("short") == ["short"]
    assert chunk_text("") == []
    unbroken = "x" * 5000  # no boundary at all: hard cuts
    assert all(len(c) <= 800 for c in chunk_text(unbroken))


def test_header_text_lists_title_album_tags_place_file() -> None:
    text = header_text(
        title="IMG_0001",
        album="Beijing 2023",
        tags=[{"label": "cat", "label_zh": "猫", "score": 0.9}],
        place={"name": "Huairou", "admin1": "Beijing", "cc": "CN", "names": ["长城", "Great Wall"]},
        file_name="IMG_0001.jpg",
    )
    assert text.split("\n") == [
        "IMG_0001",
        "Beijing 2023",
        "cat",
        "猫",
        "Huairou",
        "Beijing",
        "长城",
        "Great Wall",
        "IMG_0001.jpg",
    ]
