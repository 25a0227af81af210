"""The bilingual gazetteer, place names in queries, and offline reverse geocoding of photos."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from importlib import resources

import pytest

from aios.errors import AIOSError
from aios.index import places
from aios.index.places import Gazetteer, find_places, reverse_geocode, reverse_geocode_many

GREAT_WALL = {
    "gw-badaling",
    "gw-mutianyu",
    "gw-jinshanling",
    "gw-juyongguan",
    "gw-simatai",
    "gw-jiankou",
    "gw-shanhaiguan",
    "gw-jiayuguan",
}


def raw_entries() -> list[dict]:
    text = resources.files("aios.data").joinpath("places.json").read_text("utf-8")
    return json.loads(text)["entries"]


# --- the data ------------------------------------------------------------------------------


def test_gazetteer_json_is_valid() -> None:
    entries = raw_entries()
    ids = [e["id"] for e in entries]
    assert len(ids) == len(set(ids)), "duplicate ids"
    for e in entries:
        assert set(e) <= {"id", "names", "kind", "lat", "lon", "radius_km", "cc", "admin1"}, e
        assert e["kind"] in ("landmark", "city", "region", "country"), e["id"]
        assert -90 <= e["lat"] <= 90 and -180 <= e["lon"] <= 180, e["id"]
        assert (e["lat"], e["lon"]) != (0, 0), e["id"]
        assert e["names"]["en"] and e["names"]["zh"], e["id"]
        assert all(n.strip() == n and n for n in e["names"]["en"] + e["names"]["zh"]), e["id"]
        assert len(e["cc"]) == 2 and e["cc"].isupper(), e["id"]
    radius = {
        "landmark": (0.5, 60),  # a few big sites (Grand Canyon, Qinghai Lake) need more than 10
        "city": (10, 60),
        "region": (5, 1200),
        "country": (150, 4000),
    }
    for e in entries:
        low, high = radius[e["kind"]]
        assert low <= e["radius_km"] <= high, e["id"]


def test_gazetteer_covers_china_and_the_world() -> None:
    entries = raw_entries()
    kinds = {k: [e for e in entries if e["kind"] == k] for k in ("landmark", "city", "region")}
    provincial = [e for e in kinds["region"] if e["cc"] in ("CN", "HK", "MO", "TW")]
    assert len(provincial) == 34
    assert sum(e["cc"] in ("CN", "TW") for e in kinds["city"]) >= 80
    assert sum(e["cc"] not in ("CN", "TW", "HK", "MO") for e in kinds["city"]) >= 60
    assert len(kinds["landmark"]) >= 50
    names = {n for e in entries for n in e["names"]["zh"]}
    for zh in ["故宫", "天安门", "颐和园", "西湖", "外滩", "兵马俑", "黄山", "泰山", "漓江",
               "九寨沟", "布达拉宫", "鼓浪屿", "埃菲尔铁塔", "自由女神像", "富士山", "大本钟",
               "悉尼歌剧院", "泰姬陵", "巴黎", "东京", "纽约"]:  # fmt: skip
        assert zh in names, zh
    walls = [e for e in entries if "长城" in e["names"]["zh"]]
    assert {e["id"] for e in walls} == GREAT_WALL
    assert all("Great Wall" in e["names"]["en"] for e in walls)


def test_bad_entries_are_refused_with_their_position() -> None:
    good = raw_entries()[0]
    with pytest.raises(AIOSError, match=r"entries\[1\].*lat out of range"):
        Gazetteer.from_json(json.dumps({"entries": [good, {**good, "id": "x", "lat": 91}]}))
    with pytest.raises(AIOSError, match="duplicate"):
        Gazetteer.from_json(json.dumps({"entries": [good, good]}))
    with pytest.raises(AIOSError, match="English and Chinese"):
        Gazetteer.from_json(json.dumps({"entries": [{**good, "names": {"en": ["A"], "zh": []}}]}))


# --- place names in queries ----------------------------------------------------------------


def test_great_wall_query_returns_every_section() -> None:
    text = "之前去长城旅游时拍的照片"
    found = find_places(text)
    assert {m.entry_id for m in found} == GREAT_WALL
    assert {m.span for m in found} == {(3, 5)} and {m.name for m in found} == {"长城"}
    found = find_places("photos of the great wall of China")
    assert {m.entry_id for m in found} == GREAT_WALL  # the longest name wins over "China"
    assert [m.entry_id for m in find_places("慕田峪长城")] == ["gw-mutianyu"]


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        ("photos from Beijing last March", ["cn-beijing"]),
        ("去年夏天在杭州拍的照片", ["cn-hangzhou"]),
        ("在Paris拍的", ["fr-paris"]),  # English names inside Chinese text
        ("北京故宫", ["cn-beijing", "cn-forbidden-city"]),
        ("new york times square", ["us-newyork", "us-times-square"]),
        ("北海道的雪", ["jp-hokkaido"]),  # not 北海 (Beihai)
        ("印度尼西亚", ["c-id"]),  # not 印度 (India)
        ("Summer Palace", ["cn-summer-palace"]),
        ("PARIS", ["fr-paris"]),
        ("comparison", []),  # word boundaries: no "Paris" inside
        ("nice photos", []),
    ],
)
def test_find_places(text: str, ids: list[str]) -> None:
    assert [m.entry_id for m in find_places(text)] == ids


def test_place_match_covers_by_radius_or_admin_area() -> None:
    (mutianyu,) = find_places("慕田峪")
    assert mutianyu.covers(40.4319, 116.5704) and not mutianyu.covers(40.0, 116.0)
    (beijing,) = find_places("北京")
    assert beijing.kind == "region" and beijing.admin1 == "Beijing"
    assert beijing.covers(40.4319, 116.5704)  # by admin1, not by radius
    assert not beijing.covers(31.2304, 121.4737)  # Shanghai
    (japan,) = find_places("日本")
    assert japan.covers(35.3606, 138.7274) and not japan.covers(37.5665, 126.9780)
    assert mutianyu.to_dict()["span"] == [0, 3]


def test_gazetteer_loads_once_across_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(places, "_gazetteer", None)
    seen: list[Gazetteer] = []
    threads = [threading.Thread(target=lambda: seen.append(places.gazetteer())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(g) for g in seen}) == 1


def test_import_stays_cheap() -> None:
    code = (
        "import sys, aios.index.places, aios.index.query; "
        "print(sorted(m for m in ('scipy', 'reverse_geocoder') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- reverse geocoding ---------------------------------------------------------------------


def test_reverse_geocode_mutianyu() -> None:
    geo = reverse_geocode(40.4319, 116.5704)
    assert geo is not None
    assert geo["cc"] == "CN" and geo["admin1"] == "Beijing"
    for name in ["慕田峪长城", "长城", "Great Wall", "Beijing", "北京", "中国"]:
        assert name in geo["names"], name
    assert geo["landmarks"] == ["gw-mutianyu"]
    assert "cn-beijing" in geo["places"]


def test_reverse_geocode_eiffel_tower() -> None:
    geo = reverse_geocode(48.8584, 2.2945)
    assert geo is not None and geo["cc"] == "FR"
    for name in ["Paris", "巴黎", "Eiffel Tower", "埃菲尔铁塔", "法国"]:
        assert name in geo["names"], name
    assert geo["landmarks"] == ["fr-eiffel"]


def test_reverse_geocode_west_lake() -> None:
    geo = reverse_geocode(30.2460, 120.1500)
    assert geo is not None and geo["admin1"] == "Zhejiang Sheng"
    for name in ["西湖", "West Lake", "杭州", "Hangzhou", "浙江"]:
        assert name in geo["names"], name


def test_city_radius_stops_at_the_border() -> None:
    # Shenzhen's 35 km radius reaches Hong Kong Island; a photo there is Hong Kong's only.
    geo = reverse_geocode(22.2800, 114.1600)
    assert geo is not None and geo["cc"] == "HK"
    assert "香港" in geo["names"] and "深圳" not in geo["names"]


@pytest.mark.parametrize(
    ("lat", "lon"),
    [(0, 0), (999, 0), (0, 999), (-91, 10), (float("nan"), 1.0), (-30.0, -140.0)],  # last: open sea
)
def test_reverse_geocode_refuses_no_fix_bad_input_and_open_sea(lat: float, lon: float) -> None:
    assert reverse_geocode(lat, lon) is None


def test_batch_reverse_geocoding_is_fast_and_matches_single_lookups() -> None:
    import numpy as np

    reverse_geocode(40.0, 116.0)  # load the tables outside the timing
    rng = np.random.default_rng(7)
    pts = np.column_stack([rng.uniform(18, 50, 1000), rng.uniform(75, 130, 1000)])
    pts[0] = (0, 0)
    started = time.perf_counter()
    batch = reverse_geocode_many(pts)
    elapsed = time.perf_counter() - started
    print(f"\nreverse_geocode_many: 1000 points in {elapsed * 1000:.1f} ms")
    assert len(batch) == 1000 and batch[0] is None
    assert sum(r is not None for r in batch) > 900
    assert batch[1:20] == [reverse_geocode(*p) for p in pts[1:20]]
    assert elapsed < 2.0  # about 50 ms on a laptop core; generous for a loaded CI box
