"""Search queries split into time / place / kind filters and the words left for ranking."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from aios.index.query import parse_query

NOW = datetime(2026, 11, 22, 15, 0)
GREAT_WALL_SECTIONS = 8


def time_of(text: str) -> tuple[str, str] | None:
    t = parse_query(text, NOW).time
    return None if t is None else (f"{t.start:%Y-%m-%d}", f"{t.end:%Y-%m-%d}")


def test_great_wall_trip_photos() -> None:
    q = parse_query("之前去长城旅游时拍的照片", NOW)
    assert q.kind == "photos"
    assert len(q.places) == GREAT_WALL_SECTIONS
    assert {p.name for p in q.places} == {"长城"}
    assert q.time is None
    assert q.text == "旅游"
    assert ("place:长城", 3, 5) in q.spans and ("kind:photos", 10, 12) in q.spans


def test_photos_from_beijing_last_march() -> None:
    q = parse_query("photos from Beijing last March", NOW)
    assert [p.entry_id for p in q.places] == ["cn-beijing"]
    assert time_of(q.original) == ("2025-03-01", "2025-04-01")
    assert q.time is not None and q.time.label == "March 2025"
    assert q.kind == "photos"
    assert q.text == ""
    assert [s[0] for s in q.spans] == ["kind:photos", "place:Beijing", "time:March 2025"]


def test_summer_photos_in_hangzhou() -> None:
    q = parse_query("去年夏天在杭州拍的照片", NOW)
    assert time_of(q.original) == ("2025-06-01", "2025-09-01")
    assert [p.entry_id for p in q.places] == ["cn-hangzhou"]
    assert q.kind == "photos" and q.text == ""


def test_my_notes_from_last_week() -> None:
    q = parse_query("my notes from last week", NOW)
    assert q.kind == "docs"
    assert time_of(q.original) == ("2026-11-09", "2026-11-16")
    assert q.places == [] and q.text == ""


@pytest.mark.parametrize(
    ("query", "text", "kind"),
    [
        ("photos of the Great Wall from my trip", "trip", "photos"),
        ("sunset pics taken in Paris last summer", "sunset", "photos"),
        ("帮我找一下上周的会议记录", "会议", "docs"),
        ("documents about tax 2023", "tax", "docs"),
        ("猫的照片", "猫", "photos"),
        ("长城的图", "", "photos"),
        ("去年拍的日落", "日落", "photos"),  # 拍 (take a picture) implies photos
        ("小时候的照片", "小时候", "photos"),  # childhood: 时候 here is not glue
        ("我在巴黎埃菲尔铁塔下的自拍", "", "photos"),
        ("地图", "地图", None),  # 图 inside 地图 (map) is not a photo
        ("2024年3月5日 东京 樱花 photos", "樱花", "photos"),
        ("photos in my notes", "photos notes", None),  # both kinds named: both, words kept
    ],
)
def test_remainder_keeps_meaning_and_drops_glue(query: str, text: str, kind: str | None) -> None:
    q = parse_query(query, NOW)
    assert (q.text, q.kind) == (text, kind)


def test_place_names_win_over_time_words() -> None:
    q = parse_query("Summer Palace in the fall", NOW)
    assert [p.entry_id for p in q.places] == ["cn-summer-palace"]
    assert q.time is not None and q.time.label == "autumn 2026"


def test_time_matches_intersect() -> None:
    assert time_of("last year in March") == ("2025-03-01", "2025-04-01")
    assert time_of("去年 三月 北京") == ("2025-03-01", "2025-04-01")
    assert time_of("photos from 2023 in December") == ("2023-12-01", "2024-01-01")
    assert time_of("this year, last week") == ("2026-11-09", "2026-11-16")


def test_disjoint_times_keep_the_most_specific_and_say_so() -> None:
    q = parse_query("in March 2024 last year", NOW)
    assert time_of(q.original) == ("2024-03-01", "2024-04-01")
    assert any("most specific" in n for n in q.notes)


def test_to_dict_is_json_and_filters_are_ready_to_use() -> None:
    q = parse_query("去年三月在北京故宫拍的图片", NOW)
    d = json.loads(json.dumps(q.to_dict(), ensure_ascii=False))
    assert d["time"] == {"start": "2025-03-01T00:00:00", "end": "2025-04-01T00:00:00",
                         "label": "March 2025"}  # fmt: skip
    assert [p["id"] for p in d["places"]] == ["cn-beijing", "cn-forbidden-city"]
    assert d["kind"] == "photos" and d["text"] == ""
    assert d["spans"][0] == ["time:March 2025", 0, 4]
    assert q.time_bounds == (datetime(2025, 3, 1).timestamp(), datetime(2025, 4, 1).timestamp())
    assert len(q.near) == 2 and q.near[1] == (39.9163, 116.3972, 1.0)
    assert {"北京", "Beijing", "故宫", "Forbidden City"} <= set(q.place_names)


def test_plain_query_passes_through() -> None:
    q = parse_query("quarterly budget spreadsheet")
    assert (q.text, q.time, q.places, q.kind) == ("quarterly budget spreadsheet", None, [], None)


@pytest.mark.parametrize(
    ("query", "kind", "text"),
    [
        ("They apply image captioning models", None, "They apply image captioning models"),
        ("a new file format", None, "new file format"),
        ("cat photos", "photos", "cat"),
        ("notes about the budget", "docs", "budget"),
    ],
)
def test_english_kind_words_inside_a_phrase_stay_words(
    query: str, kind: str | None, text: str
) -> None:
    parsed = parse_query(query, NOW)
    assert (parsed.kind, parsed.text) == (kind, text)
