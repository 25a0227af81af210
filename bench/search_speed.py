"""Speed of the on-device index: indexing throughput and query latency at 10k and 100k items.

1. Documents/s: short notes (3-6 sentences drawn from ACLSum papers) written as files and added
   by the real `index` skill (USE-v3 encoder on onnxruntime, SQLite, FTS5).
2. Photos/s: scikit-image's colour sample photos, cropped and resized into distinct JPEGs with
   EXIF time and GPS, added by the same skill: decode, EXIF, offline reverse geocoding, and
   EfficientNet-Lite0 tags (the model must be built: ``aios models build efficientnet-lite0``).
3. Query latency at each size: a store filled directly (no files) with that many notes, each
   with a real embedding (the mean of its sentences' real USE embeddings: embedding 100k notes
   one by one would take minutes and measure the encoder, not the index). Queries are the
   ACLSum summaries; timed are the ranking alone (lexical, vector, hybrid) and the whole
   `search` skill through the orchestrator (query understanding + embedding + ranking).

Run from the repository root::

    python bench/search_speed.py [--sizes 10000,100000] [--notes 2000] [--photos 120] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import err, percentile
from search_quality import load_aclsum, orchestrator

ENCODER = "use-v3-multilingual"


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def sentences() -> list[str]:
    out = []
    for p in load_aclsum():
        out += [s for s in p["text"].replace("\n\n", " ").split(" . ") if len(s) > 40]
    return sorted(set(out))


def write_notes(folder: Path, pool: list[str], n: int, rng: random.Random) -> None:
    folder.mkdir(parents=True)
    for i in range(n):
        body = ". ".join(rng.sample(pool, rng.randint(3, 6))) + "."
        (folder / f"note-{i:05d}.txt").write_text(f"Note {i}\n\n{body}\n", encoding="utf-8")


def write_photos(folder: Path, n: int, rng: random.Random) -> int:
    """Distinct JPEGs cut from skimage's colour photos, with EXIF time and GPS."""
    from PIL import Image
    from skimage import data

    names = [
        "astronaut",
        "chelsea",
        "coffee",
        "rocket",
        "cat",
        "hubble_deep_field",
        "immunohistochemistry",
        "retina",
    ]
    sources = [Image.fromarray(getattr(data, name)()) for name in names if hasattr(data, name)]
    places = [(40.4319, 116.5704), (30.2460, 120.1500), (48.8584, 2.2945), (31.2400, 121.4900)]
    folder.mkdir(parents=True)
    for i in range(n):
        img = sources[i % len(sources)]
        w, h = img.size
        cw, ch = int(w * rng.uniform(0.6, 1.0)), int(h * rng.uniform(0.6, 1.0))
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
        crop = img.crop((x, y, x + cw, y + ch)).resize((rng.choice([640, 800, 1024]),) * 2)
        exif = Image.Exif()
        exif_ifd = {0x9003: f"2025:0{1 + i % 9}:1{i % 10} 10:00:00"}
        lat, lon = places[i % len(places)]
        gps = {
            1: "N",
            2: (int(lat), int(lat * 60) % 60, round(lat * 3600 % 60, 2)),
            3: "E",
            4: (int(lon), int(lon * 60) % 60, round(lon * 3600 % 60, 2)),
        }
        exif[0x8769] = exif_ifd
        exif[0x8825] = gps
        crop.convert("RGB").save(folder / f"IMG_{i:05d}.jpg", quality=90, exif=exif)
    return n


def fill_store(store: Any, pool: list[str], vecs: np.ndarray, n: int, rng: random.Random) -> None:
    from aios.index.store import ChunkRecord, ItemRecord
    from aios.index.textseg import index_terms  # noqa: F401 - the store segments itself

    now = time.time()
    with store.transaction():
        for i in range(n):
            pick = rng.sample(range(len(pool)), rng.randint(3, 6))
            body = ". ".join(pool[j] for j in pick) + "."
            vec = vecs[pick].mean(axis=0)
            item = ItemRecord(
                path=f"/synthetic/note-{i:06d}.txt",
                root="/synthetic",
                kind="doc",
                size=len(body),
                mtime_ns=0,
                sha256=f"{i:064x}",
                title=f"Note {i}",
                created_at=now - rng.uniform(0, 3e7),
            )
            store.upsert_item(item, [ChunkRecord(0, f"Note {i}"), ChunkRecord(1, body, vec)])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="10000,100000", help="store sizes to time queries at")
    ap.add_argument("--notes", type=int, default=2000, help="note files for docs/s")
    ap.add_argument("--photos", type=int, default=120, help="photo files for photos/s")
    ap.add_argument("--queries", type=int, default=200, help="queries per size")
    ap.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    rng = random.Random(7)
    pool = sentences()
    queries = [s for p in load_aclsum() for s in p["summaries"]][: args.queries]
    out: dict[str, Any] = {"sizes": {}}

    with tempfile.TemporaryDirectory(prefix="aios-speed-") as tmp:
        from aios.index.paths import index_path
        from aios.index.search import Filters, hybrid_search
        from aios.index.store import IndexStore

        orch = orchestrator(tmp)
        try:
            notes = Path(tmp) / "notes"
            write_notes(notes, pool, args.notes, rng)
            t0 = time.perf_counter()
            res = orch.invoke("index", {"path": str(notes), "user": "notes"})
            secs = time.perf_counter() - t0 - res.record.load_ms / 1000
            out["docs_per_s"] = round(res.output.new / secs, 1)
            err(
                f"documents: {res.output.new} notes, {res.output.chunks} chunks in {secs:.1f} s "
                f"= {out['docs_per_s']} docs/s (model load excluded)"
            )

            photos = Path(tmp) / "photos"
            write_photos(photos, args.photos, rng)
            t0 = time.perf_counter()
            res = orch.invoke("index", {"path": str(photos), "user": "photos"})
            secs = time.perf_counter() - t0 - res.record.load_ms / 1000
            out["photos_per_s"] = round(res.output.new / secs, 1)
            out["photo_tags"] = res.output.photo_tags
            err(
                f"photos: {res.output.new} in {secs:.1f} s = {out['photos_per_s']} photos/s "
                f"({res.output.photo_tags})"
            )

            handle = orch.load_model(ENCODER).handle
            t0 = time.perf_counter()
            pool_vecs = np.concatenate(
                [
                    handle.run({"inputs": np.asarray(pool[i : i + 64], dtype=object)})["outputs"]
                    for i in range(0, len(pool), 64)
                ]
            ).astype(np.float32)
            err(f"embedded {len(pool)} pool sentences in {time.perf_counter() - t0:.1f} s")

            for n in sizes:
                user = f"synthetic-{n}"
                db = index_path(orch.config, orch.base_dir, user)
                db.parent.mkdir(parents=True, exist_ok=True)
                t0 = time.perf_counter()
                with IndexStore(db, model=ENCODER) as store:
                    fill_store(store, pool, pool_vecs, n, rng)
                fill_s = time.perf_counter() - t0
                row: dict[str, Any] = {"fill_s": round(fill_s, 1)}
                with IndexStore(db) as store:
                    rss0 = rss_mb()
                    t0 = time.perf_counter()
                    store.vectors()
                    row["vector_cache_load_ms"] = round((time.perf_counter() - t0) * 1000, 1)
                    row["vector_cache_mb"] = round(rss_mb() - rss0, 1)
                    qv = handle.run({"inputs": np.asarray(queries, dtype=object)})["outputs"]
                    qv = qv / np.linalg.norm(qv, axis=1, keepdims=True)
                    for mode in ("lexical", "vector", "hybrid"):
                        times = []
                        for q, v in zip(queries, qv, strict=True):
                            t = time.perf_counter()
                            hybrid_search(
                                store,
                                q if mode != "vector" else "",
                                v if mode != "lexical" else None,
                                Filters(),
                                limit=10,
                            )
                            times.append((time.perf_counter() - t) * 1000)
                        row[mode] = {
                            "p50": round(percentile(times, 50), 2),
                            "p99": round(percentile(times, 99), 2),
                        }
                skill = []
                for q in queries:
                    t = time.perf_counter()
                    orch.invoke("search", {"query": q, "user": user, "limit": 10})
                    skill.append((time.perf_counter() - t) * 1000)
                row["search_skill"] = {
                    "p50": round(percentile(skill, 50), 2),
                    "p99": round(percentile(skill, 99), 2),
                }
                row["db_mb"] = round(db.stat().st_size / 1e6, 1)
                out["sizes"][str(n)] = row
                err(
                    f"{n} items: filled in {fill_s:.1f} s, db {row['db_mb']} MB, vector cache "
                    f"{row['vector_cache_load_ms']} ms / +{row['vector_cache_mb']} MB RSS"
                )
        finally:
            orch.close()

    err(
        f"\n{'items':>7}  {'lexical p50/p99':>16}  {'vector p50/p99':>16}  "
        f"{'hybrid p50/p99':>16}  {'search skill p50/p99':>21}"
    )
    for n, row in out["sizes"].items():
        cells = [
            f"{row[m]['p50']:7.1f}/{row[m]['p99']:<7.1f}"
            for m in ("lexical", "vector", "hybrid", "search_skill")
        ]
        err(f"{n:>7}  {cells[0]:>16}  {cells[1]:>16}  {cells[2]:>16}  {cells[3]:>21}")
    err(
        f"indexing: {out['docs_per_s']} docs/s, {out['photos_per_s']} photos/s; "
        "target: search p50 <= 30 ms at 100k"
    )
    if args.json:
        print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
