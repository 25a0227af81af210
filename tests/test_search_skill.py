"""The `index` and `search` skills end to end: real files, the real multilingual encoder, the real
image model (built once per session), SQLite, offline reverse geocoding; and the CLI verbs.

The folder mixes English and Chinese documents (text, Markdown, HTML, PDF) with photos whose
EXIF holds a time and a GPS position, so queries exercise cross-lingual matching, time and place
filters, image tags and the reasons each result carries.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from aios import Orchestrator
from aios.config.loader import load_config

from .conftest import run_cli
from .test_indexer import pdf_bytes

pytestmark = pytest.mark.model

DOCS = {
    "notes/great-wall-trip.md": (
        "# Trip to the Great Wall\n\nWe hiked the Mutianyu section of the Great Wall near "
        "Beijing. The watchtowers were crowded in the morning, quiet by the afternoon."
    ),
    "notes/杭州西湖.txt": "周末去杭州西湖散步，看了断桥和雷峰塔，晚上吃了西湖醋鱼。",
    "work/quarterly-report.html": (
        "<html><head><title>Quarterly budget</title><script>var x = 1;</script></head>"
        "<body><p>The quarterly budget review covers cloud costs and hiring plans.</p></body>"
        "</html>"
    ),
}
PHOTOS = {
    # name: (skimage sample, EXIF time, (lat, lon) or None)
    "DCIM/Beijing 2025/IMG_0001.jpg": ("chelsea", "2025:03:15 10:30:00", (40.4319, 116.5704)),
    "DCIM/Hangzhou/IMG_0002.jpg": ("coffee", "2025:07:20 15:00:00", (30.2460, 120.1500)),
    "DCIM/misc/IMG_0003.jpg": ("rocket", None, None),
}


def _dms(value: float) -> tuple[float, float, float]:
    value = abs(value)
    deg = int(value)
    minutes = int((value - deg) * 60)
    return (deg, minutes, round((value - deg - minutes / 60) * 3600, 4))


def write_photo(path: Path, sample: str, when: str | None, where: Any) -> None:
    data = pytest.importorskip("skimage.data", reason="scikit-image (the [build] extra)")
    img = Image.fromarray(getattr(data, sample)()).convert("RGB")
    exif = Image.Exif()
    if when:
        exif[0x8769] = {0x9003: when}
    if where:
        lat, lon = where
        exif[0x8825] = {
            1: "N" if lat >= 0 else "S",
            2: _dms(lat),
            3: "E" if lon >= 0 else "W",
            4: _dms(lon),
        }
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, quality=90, exif=exif)


def make_library(root: Path) -> Path:
    for rel, text in DOCS.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    (root / "work").mkdir(exist_ok=True)
    (root / "work/wall-guide.pdf").write_bytes(
        pdf_bytes("Visitor guide to the Badaling Great Wall")
    )
    for rel, (sample, when, where) in PHOTOS.items():
        write_photo(root / rel, sample, when, where)
    return root


def write_config(tmp_path: Path, model_dir: Path) -> Path:
    """The shipped reference config, with the index and built image models in test folders."""
    _, ref = load_config(None)
    assert ref is not None
    text = ref.read_text(encoding="utf-8")
    text += textwrap.dedent(
        f"""
        [index]
        dir = "{tmp_path / "index"}"

        [storage]
        model_dir = "{model_dir}"
        """
    )
    cfg = tmp_path / "oem.toml"
    cfg.write_text(text, encoding="utf-8")
    return cfg


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, vision_models: Path) -> Iterator[Any]:
    tmp = tmp_path_factory.mktemp("search")
    root = make_library(tmp / "library")
    cfg = write_config(tmp, vision_models)
    orch = Orchestrator.from_file(cfg, strict=True, ledger=False)
    result = orch.invoke("index", {"path": str(root)})
    try:
        yield orch, root, result, cfg
    finally:
        orch.close()


def search(orch: Orchestrator, query: str, **kw: Any) -> dict[str, Any]:
    out = orch.invoke("search", {"query": query, **kw})
    assert out.record.tier is not None and out.record.tier.value == "device"
    return out.output.model_dump()


def names(out: dict[str, Any]) -> list[str]:
    return [Path(r["path"]).name for r in out["results"]]


def test_index_reports_documents_photos_tags_and_places(library: Any) -> None:
    orch, root, result, _ = library
    out = result.output
    assert (out.new, out.skipped, out.cancelled) == (7, [], False)
    assert out.photo_tags == "tagged by efficientnet-lite0"
    assert result.record.model == "use-v3-multilingual" and result.record.tier.value == "device"
    aux = [d for d in result.record.reasons if d.choice == "efficientnet-lite0"]
    assert aux and "auxiliary vision model" in aux[0].reason


def test_english_query_finds_the_document(library: Any) -> None:
    orch, *_ = library
    out = search(orch, "quarterly budget and hiring")
    assert names(out)[0] == "quarterly-report.html"
    assert "text" in out["results"][0]["why"]


def test_chinese_query_finds_english_documents_and_the_reverse(library: Any) -> None:
    orch, *_ = library
    out = search(orch, "长城徒步旅行的笔记")
    assert out["understood"]["kind"] == "docs"
    assert "great-wall-trip.md" in names(out)[:2]
    out = search(orch, "West Lake in Hangzhou", kind="docs")
    assert names(out)[0] == "杭州西湖.txt"


def test_great_wall_photos_by_place_in_chinese(library: Any) -> None:
    orch, *_ = library
    out = search(orch, "之前去长城旅游时拍的照片")
    assert out["understood"]["kind"] == "photos"
    assert names(out) == ["IMG_0001.jpg"]  # only the photo taken at Mutianyu
    hit = out["results"][0]
    assert any(w.startswith("place") for w in hit["why"])
    assert hit["taken_at"] == "2025-03-15T10:30:00"


def test_time_and_place_filters_in_english(library: Any) -> None:
    orch, *_ = library
    out = search(orch, "photos from Hangzhou in July 2025")
    assert names(out) == ["IMG_0002.jpg"]
    assert {"time", "place: Hangzhou"} <= set(out["results"][0]["why"]) or "time" in out["results"][
        0
    ]["why"]
    assert search(orch, "photos from Hangzhou in March 2025")["results"] == []


def test_image_tags_match_queries_in_both_languages(library: Any) -> None:
    orch, *_ = library
    for query in ("a photo of a cat", "猫的照片"):
        out = search(orch, query, kind="photos")
        assert names(out)[0] == "IMG_0001.jpg", query
        assert any(
            w.startswith("tag") or w.startswith("semantic") for w in out["results"][0]["why"]
        )
    out = search(orch, "espresso", kind="photos")
    assert names(out)[0] == "IMG_0002.jpg"
    assert any(w.startswith("tag") for w in out["results"][0]["why"])


def test_kind_filter_and_pdf_text(library: Any) -> None:
    orch, *_ = library
    out = search(orch, "Badaling visitor guide", kind="docs")
    assert names(out)[0] == "wall-guide.pdf"
    assert all(r["kind"] == "doc" for r in out["results"])


def test_incremental_reindex_follows_changes(library: Any, tmp_path: Path) -> None:
    orch, root, _, _ = library
    again = orch.invoke("index", {"path": str(root)}).output
    assert (again.new, again.changed, again.unchanged) == (0, 0, 7)
    (root / "notes/new-note.txt").write_text("Packing list for the ski trip.", encoding="utf-8")
    shutil.move(root / "work/quarterly-report.html", root / "notes/quarterly-report.html")
    (root / "notes/杭州西湖.txt").unlink()
    out = orch.invoke("index", {"path": str(root)}).output
    assert (out.new, out.moved, out.deleted) == (1, 1, 1)
    assert names(search(orch, "ski trip packing"))[0] == "new-note.txt"
    assert search(orch, "quarterly budget")["results"][0]["path"].endswith(
        "notes/quarterly-report.html"
    )


def test_private_skills_never_go_to_the_cloud(library: Any) -> None:
    orch, *_ = library
    from aios.routing.policy import RequestOptions

    rec = orch.explain("search", {"query": "cat"}, RequestOptions(mode="prefer_cloud"))
    assert rec.tier is not None and rec.tier.value == "device"
    assert any("private" in d.reason for d in rec.reasons if d.stage == "tier")


def test_search_without_an_index_is_empty_not_an_error(library: Any) -> None:
    orch, *_ = library
    out = search(orch, "anything", user="nobody")
    assert out["results"] == []


def test_index_of_a_missing_folder_is_a_clean_error(library: Any, tmp_path: Path) -> None:
    orch, *_ = library
    from aios.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="no such file or folder"):
        orch.invoke("index", {"path": str(tmp_path / "missing")})


def test_cli_index_add_status_and_search(tmp_path: Path, vision_models: Path) -> None:
    root = make_library(tmp_path / "lib")
    cfg = write_config(tmp_path, vision_models)
    proc = run_cli("index", "add", str(root), "--config", str(cfg), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["output"]["new"] == 7
    proc = run_cli("index", "status", "--config", str(cfg), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["items"] == {"doc": 4, "photo": 3}
    proc = run_cli(
        "run", "search", "--query", "长城的照片", "--kind", "photos", "--config", str(cfg)
    )
    assert proc.returncode == 0, proc.stderr
    assert "IMG_0001.jpg" in proc.stdout and "why:" in proc.stdout
    proc = run_cli("index", "add", str(tmp_path / "nope"), "--config", str(cfg))
    assert proc.returncode != 0 and "no such file or folder" in proc.stderr
    assert "Traceback" not in proc.stderr
