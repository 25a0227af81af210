"""Time expressions in English and Chinese resolve to exact ranges against a fixed 'now'."""

from __future__ import annotations

from datetime import datetime

import pytest

from aios.index.timeparse import TimeRange, describe, parse_times

# A Sunday afternoon: weeks run Monday 2026-11-16 .. Sunday 2026-11-22.
NOW = datetime(2026, 11, 22, 15, 0)


def d(s: str) -> datetime:
    return datetime.fromisoformat(s)


def only(text: str, now: datetime = NOW) -> tuple[str, str, str]:
    """The single match in ``text`` as (matched text, start date, end date)."""
    found = parse_times(text, now)
    assert len(found) == 1, (text, found)
    m = found[0]
    return text[m.span[0] : m.span[1]], f"{m.start:%Y-%m-%d}", f"{m.end:%Y-%m-%d}"


CASES_EN = [
    ("today", "2026-11-22", "2026-11-23"),
    ("yesterday", "2026-11-21", "2026-11-22"),
    ("the day before yesterday", "2026-11-20", "2026-11-21"),
    ("this week", "2026-11-16", "2026-11-23"),
    ("last week", "2026-11-09", "2026-11-16"),
    ("next week", "2026-11-23", "2026-11-30"),
    ("this month", "2026-11-01", "2026-12-01"),
    ("last month", "2026-10-01", "2026-11-01"),
    ("this year", "2026-01-01", "2027-01-01"),
    ("last year", "2025-01-01", "2026-01-01"),
    ("last weekend", "2026-11-14", "2026-11-16"),
    ("this weekend", "2026-11-21", "2026-11-23"),
    ("3 days ago", "2026-11-19", "2026-11-20"),
    ("three days ago", "2026-11-19", "2026-11-20"),
    ("two weeks ago", "2026-11-02", "2026-11-09"),  # the calendar week holding that day
    ("2 months ago", "2026-09-01", "2026-10-01"),
    ("a year ago", "2025-01-01", "2026-01-01"),
    ("March", "2026-03-01", "2026-04-01"),  # the most recent March not in the future
    ("December", "2025-12-01", "2026-01-01"),
    ("last March", "2025-03-01", "2025-04-01"),  # strictly in a past year
    ("March 2023", "2023-03-01", "2023-04-01"),
    ("2019", "2019-01-01", "2020-01-01"),
    ("summer 2022", "2022-06-01", "2022-09-01"),
    ("summer of 2022", "2022-06-01", "2022-09-01"),
    ("winter 2022", "2022-12-01", "2023-03-01"),  # seasons are named by the year they start
    ("last summer", "2026-06-01", "2026-09-01"),  # the most recent one that has ended
    ("last autumn", "2025-09-01", "2025-12-01"),  # autumn 2026 is still under way
    ("this winter", "2026-12-01", "2027-03-01"),
    ("winter", "2025-12-01", "2026-03-01"),  # the most recent one that has started
    ("2024-05-01", "2024-05-01", "2024-05-02"),
    ("2024/5/1", "2024-05-01", "2024-05-02"),
    ("May 1", "2026-05-01", "2026-05-02"),
    ("May 1st 2024", "2024-05-01", "2024-05-02"),
    ("December 25", "2025-12-25", "2025-12-26"),  # this year's is still to come
    ("5 May 2024", "2024-05-05", "2024-05-06"),
    ("recently", "2026-10-23", "2026-11-23"),  # last 30 days, today included
    ("lately", "2026-10-23", "2026-11-23"),
    ("earlier this year", "2026-01-01", "2026-11-23"),
    ("past week", "2026-11-15", "2026-11-23"),
    ("last 3 days", "2026-11-19", "2026-11-23"),
    ("early 2023", "2023-01-01", "2023-04-01"),
    ("end of last year", "2025-10-01", "2026-01-01"),
    ("last Friday", "2026-11-20", "2026-11-21"),
    ("Sunday", "2026-11-22", "2026-11-23"),
]

CASES_ZH = [
    ("今天", "2026-11-22", "2026-11-23"),
    ("昨天", "2026-11-21", "2026-11-22"),
    ("前天", "2026-11-20", "2026-11-21"),
    ("大前天", "2026-11-19", "2026-11-20"),
    ("本周", "2026-11-16", "2026-11-23"),
    ("这周", "2026-11-16", "2026-11-23"),
    ("这星期", "2026-11-16", "2026-11-23"),
    ("上周", "2026-11-09", "2026-11-16"),
    ("上星期", "2026-11-09", "2026-11-16"),
    ("上个星期", "2026-11-09", "2026-11-16"),
    ("下周", "2026-11-23", "2026-11-30"),
    ("本月", "2026-11-01", "2026-12-01"),
    ("这个月", "2026-11-01", "2026-12-01"),
    ("上个月", "2026-10-01", "2026-11-01"),
    ("上月", "2026-10-01", "2026-11-01"),
    ("今年", "2026-01-01", "2027-01-01"),
    ("去年", "2025-01-01", "2026-01-01"),
    ("前年", "2024-01-01", "2025-01-01"),
    ("明年", "2027-01-01", "2028-01-01"),
    ("上周末", "2026-11-14", "2026-11-16"),
    ("这周末", "2026-11-21", "2026-11-23"),
    ("上周三", "2026-11-11", "2026-11-12"),
    ("去年夏天", "2025-06-01", "2025-09-01"),
    ("今年春天", "2026-03-01", "2026-06-01"),
    ("夏天", "2026-06-01", "2026-09-01"),  # the most recent one that has started
    ("冬天", "2025-12-01", "2026-03-01"),
    ("2022年冬天", "2022-12-01", "2023-03-01"),
    ("三月", "2026-03-01", "2026-04-01"),
    ("十二月", "2025-12-01", "2026-01-01"),
    ("去年三月", "2025-03-01", "2025-04-01"),
    ("2023年3月", "2023-03-01", "2023-04-01"),
    ("2023年三月", "2023-03-01", "2023-04-01"),
    ("2023年", "2023-01-01", "2024-01-01"),
    ("23年", "2023-01-01", "2024-01-01"),
    ("3月5日", "2026-03-05", "2026-03-06"),
    ("2024年3月5日", "2024-03-05", "2024-03-06"),
    ("去年十月一号", "2025-10-01", "2025-10-02"),
    ("三天前", "2026-11-19", "2026-11-20"),
    ("十天前", "2026-11-12", "2026-11-13"),
    ("两周前", "2026-11-02", "2026-11-09"),
    ("三个月前", "2026-08-01", "2026-09-01"),
    ("一年前", "2025-01-01", "2026-01-01"),
    ("最近", "2026-10-23", "2026-11-23"),
    ("最近三天", "2026-11-19", "2026-11-23"),
    ("前几天", "2026-11-15", "2026-11-23"),
    ("年初", "2026-01-01", "2026-04-01"),
    ("年底", "2026-10-01", "2027-01-01"),
    ("去年年底", "2025-10-01", "2026-01-01"),
    ("去年底", "2025-10-01", "2026-01-01"),
    ("2023年初", "2023-01-01", "2023-04-01"),
    ("上半年", "2026-01-01", "2026-07-01"),
    ("去年暑假", "2025-07-01", "2025-09-01"),
]


@pytest.mark.parametrize(("text", "start", "end"), CASES_EN + CASES_ZH)
def test_expression_resolves_to_exact_range(text: str, start: str, end: str) -> None:
    assert only(text) == (text, start, end)


@pytest.mark.parametrize(
    ("query", "matched", "start", "end"),
    [
        ("photos from Beijing last March", "last March", "2025-03-01", "2025-04-01"),
        ("pictures in May", "May", "2026-05-01", "2026-06-01"),
        ("my notes from last week", "last week", "2026-11-09", "2026-11-16"),
        ("之前去长城旅游时拍的照片", None, None, None),
        ("去年夏天在杭州拍的照片", "去年夏天", "2025-06-01", "2025-09-01"),
        ("2024-05-01的照片", "2024-05-01", "2024-05-01", "2024-05-02"),  # no \b beside CJK
        ("在2019年拍的", "2019年", "2019-01-01", "2020-01-01"),
    ],
)
def test_expressions_inside_queries(
    query: str, matched: str | None, start: str | None, end: str | None
) -> None:
    if matched is None:
        assert parse_times(query, NOW) == []
    else:
        assert only(query) == (matched, start, end)


@pytest.mark.parametrize(
    "text",
    [
        "photos that may help",  # modal verb, not the month
        "jan's birthday",  # a name, not January
        "a fall from the bike",
        "地图",
        "晚上月亮的照片",  # 上月 inside 晚上月亮 is not last month
        "学校周边",  # 这周边 / 周边 is not a week
        "初中同学",  # 初 alone is not early in the year
        "iPhone 15 Pro",
    ],
)
def test_words_that_are_not_times(text: str) -> None:
    assert parse_times(text, NOW) == []


def test_longest_overlapping_match_wins() -> None:
    (m,) = parse_times("去年三月", NOW)
    assert m.span == (0, 4) and m.label == "March 2025"
    (m,) = parse_times("the day before yesterday", NOW)
    assert m.span == (0, 24)


def test_separate_matches_are_all_returned_in_text_order() -> None:
    found = parse_times("去年 三月 and last week", NOW)
    assert [m.label for m in found] == ["2025", "March 2026", "week of 2026-11-09"]


def test_months_and_seasons_move_with_now() -> None:
    # In January, "this winter" is the one under way; "last March" is still the previous year's.
    jan = datetime(2027, 1, 10, 9, 0)
    assert only("this winter", jan)[1:] == ("2026-12-01", "2027-03-01")
    assert only("last March", jan)[1:] == ("2026-03-01", "2026-04-01")
    assert only("三月", jan)[1:] == ("2026-03-01", "2026-04-01")
    # Feb 29 without a year: the most recent leap day.
    assert only("Feb 29", jan)[1:] == ("2024-02-29", "2024-03-01")


def test_labels_name_the_range() -> None:
    assert describe(d("2025-03-01"), d("2025-04-01")) == "March 2025"
    assert describe(d("2025-06-01"), d("2025-09-01")) == "summer 2025"
    assert describe(d("2025-01-01"), d("2026-01-01")) == "2025"
    assert describe(d("2026-11-09"), d("2026-11-16")) == "week of 2026-11-09"
    assert describe(d("2026-11-21"), d("2026-11-22")) == "2026-11-21"
    assert describe(d("2026-11-14"), d("2026-11-16")) == "2026-11-14 to 2026-11-15"


def test_time_range_intersection_and_containment() -> None:
    year = TimeRange(d("2025-01-01"), d("2026-01-01"), "2025")
    march = TimeRange(d("2025-03-01"), d("2025-04-01"), "March 2025")
    assert year.intersect(march) == march
    assert march.contains(d("2025-03-31T23:59")) and not march.contains(d("2025-04-01"))
    assert year.intersect(TimeRange(d("2026-03-01"), d("2026-04-01"), "x")) is None
