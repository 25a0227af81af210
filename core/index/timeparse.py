"""Time expressions in search queries, English and Chinese, turned into concrete date ranges.

"last March", "去年夏天", "三天前" become half-open ``[start, end)`` ranges of naive local
datetimes, resolved against a caller-supplied ``now`` so that results are reproducible.

Conventions (chosen for photo search, where people ask about the past):
- A month, season or day named without a year is the most recent one that has started
  ("in March", "三月", "May 1", "夏天"); "last March" is March of the previous year.
- Weeks run Monday to Sunday; "last week"/"上周" is the previous calendar week.
- Seasons are northern-hemisphere meteorological (spring Mar-May, summer Jun-Aug, autumn
  Sep-Nov, winter Dec-Feb) and are named by the year they start in: "winter 2022" is
  Dec 2022 - Feb 2023. "last summer" is the most recent summer that has ended.
- "N weeks ago"/"两周前" is the calendar week that holds the day N weeks ago; months and years
  alike. Rolling windows ("past 3 days", "最近三天", "recently" = 30 days) end with today.
- Parts of a year: early/年初 Jan-Mar, mid/年中 May-Aug, late/年底/年末 Oct-Dec, 上半年/下半年.

Every rule proposes candidates; where candidates overlap the longest wins ("去年三月" over
"去年"). Separate matches are all returned; ``aios.index.query`` intersects them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

DAY = timedelta(days=1)
Range = tuple[datetime, datetime]

MONTH_NAMES = (
    "January February March April May June July August September October November December"
).split()
SEASON_NAMES = {3: "spring", 6: "summer", 9: "autumn", 12: "winter"}


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    end: datetime  # exclusive
    label: str

    def contains(self, when: datetime) -> bool:
        return self.start <= when < self.end

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    def intersect(self, other: TimeRange) -> TimeRange | None:
        start, end = max(self.start, other.start), min(self.end, other.end)
        return TimeRange(start, end, describe(start, end)) if start < end else None


@dataclass(frozen=True)
class TimeMatch:
    start: datetime
    end: datetime  # exclusive
    span: tuple[int, int]  # character offsets into the parsed text
    label: str  # a readable name of the range ("March 2025", "week of 2026-11-09")

    @property
    def range(self) -> TimeRange:
        return TimeRange(self.start, self.end, self.label)


def describe(start: datetime, end: datetime) -> str:
    """A short readable name for a range: a day, a month, a season, a year, a week, or dates."""
    midnight = start.time() == end.time() == datetime.min.time()
    if midnight and end - start == DAY:
        return f"{start:%Y-%m-%d}"
    if midnight and start.day == 1 and end.day == 1:
        months = (end.year - start.year) * 12 + end.month - start.month
        if months == 12 and start.month == 1:
            return str(start.year)
        if months == 1:
            return f"{MONTH_NAMES[start.month - 1]} {start.year}"
        if months == 3 and start.month in SEASON_NAMES:
            return f"{SEASON_NAMES[start.month]} {start.year}"
    if midnight and start.weekday() == 0 and end - start == 7 * DAY:
        return f"week of {start:%Y-%m-%d}"
    if midnight:
        return f"{start:%Y-%m-%d} to {end - DAY:%Y-%m-%d}"
    return f"{start.isoformat()} to {end.isoformat()}"


# --- calendar arithmetic -------------------------------------------------------------------


def _date(y: int, m: int, d: int = 1) -> datetime | None:
    try:
        return datetime(y, m, d)
    except ValueError:
        return None


def _shift(y: int, m: int, k: int) -> tuple[int, int]:
    """(year, month) k months after (y, m)."""
    y2, m0 = divmod(y * 12 + m - 1 + k, 12)
    return y2, m0 + 1


def _months(y: int, m: int, n: int) -> Range:
    y2, m2 = _shift(y, m, n)
    return datetime(y, m, 1), datetime(y2, m2, 1)


def _day(t: datetime) -> Range:
    return t, t + DAY


def _week(t: datetime, k: int = 0) -> Range:
    start = t - t.weekday() * DAY + timedelta(weeks=k)
    return start, start + 7 * DAY


def _year(y: int) -> Range:
    return datetime(y, 1, 1), datetime(y + 1, 1, 1)


@dataclass(frozen=True)
class _Ctx:
    today: datetime  # midnight of ``now``

    def calendar(self, unit: str, k: int) -> Range:
        """This (k=0), last (k=-1), next (k=1) week, month or year."""
        t = self.today
        if unit == "week":
            return _week(t, k)
        if unit == "month":
            return _months(*_shift(t.year, t.month, k), 1)
        return _year(t.year + k)

    def ago(self, n: int, unit: str) -> Range:
        t = self.today
        if unit == "day":
            return _day(t - n * DAY)
        if unit == "week":
            return _week(t - timedelta(weeks=n))
        return self.calendar(unit, -n)

    def rolling(self, n: int, unit: str) -> Range:
        """The last n units up to the end of today."""
        t = self.today
        if unit in ("day", "week"):
            start = t - n * (7 if unit == "week" else 1) * DAY
        else:
            y, m = _shift(t.year, t.month, -n * (12 if unit == "year" else 1))
            start = _date(y, m, t.day) or _date(y, m, 28) or t
        return start, t + DAY

    def since_start(self, unit: str) -> Range:
        return self.calendar(unit, 0)[0], self.today + DAY

    def weekend(self, k: int | None) -> Range:
        """k weeks from this one; None: the most recent weekend that has started."""
        if k is None:
            k = 0 if self.today.weekday() >= 5 else -1
        start = _week(self.today, k)[0] + 5 * DAY
        return start, start + 2 * DAY

    def weekday(self, wd: int, k: int | None = None, before: bool = False) -> Range:
        """Weekday wd (Monday 0) of the week k weeks from this one; without k the most recent
        one, today included unless ``before``."""
        t = self.today
        if k is not None:
            return _day(_week(t, k)[0] + wd * DAY)
        back = (t.weekday() - wd - 1) % 7 + 1 if before else (t.weekday() - wd) % 7
        return _day(t - back * DAY)

    def month(self, m: int, rel: str | None) -> Range:
        y = self.today.year
        if rel is None:
            y -= m > self.today.month
        elif rel == "last":
            y -= 1
        elif rel == "next":
            y += m <= self.today.month
        return _months(y, m, 1)

    def recent_day(self, m: int, d: int) -> Range | None:
        """The most recent (m, d) not in the future; Feb 29 looks back to a leap year."""
        for y in range(self.today.year, self.today.year - 8, -1):
            t = _date(y, m, d)
            if t is not None and t <= self.today:
                return _day(t)
        return None

    def season(self, sm: int, rel: str | None, n: int = 3) -> Range:
        y = self.today.year

        def rng(year: int) -> Range:
            return _months(year, sm, n)

        if rel is None:  # the most recent one that has started
            y -= rng(y)[0] > self.today
        elif rel == "last":  # the most recent one that has ended
            while rng(y)[1] > self.today:
                y -= 1
        elif rel == "this":  # the one under way (winter spans New Year), else this year's
            y -= sm + n > 13 and self.today.month < sm + n - 12
        elif rel == "next":
            while rng(y)[0] <= self.today:
                y += 1
        return rng(y)


def _year_part(y: int, part: str) -> Range:
    starts = {"early": (1, 3), "mid": (5, 4), "late": (10, 3), "h1": (1, 6), "h2": (7, 6)}
    m, n = starts[part]
    return _months(y, m, n)


# --- numbers -------------------------------------------------------------------------------

EN_NUMBERS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
    "a couple of": 2, "couple of": 2, "a few": 3, "few": 3, "several": 3,
}  # fmt: skip
CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6,
             "七": 7, "八": 8, "九": 9}  # fmt: skip


def _cn_int(s: str) -> int | None:
    """Arabic digits or a Chinese numeral up to 99 ("十五", "二十一", "两")."""
    if s.isdigit():
        return int(s)
    try:
        if "十" in s:
            tens, _, ones = s.partition("十")
            return (CN_DIGITS[tens] if tens else 1) * 10 + (CN_DIGITS[ones] if ones else 0)
        return CN_DIGITS[s] if len(s) == 1 else None
    except KeyError:
        return None


def _en_int(s: str) -> int:
    s = " ".join(s.lower().split())
    return int(s) if s.isdigit() else EN_NUMBERS[s]


# --- rules ---------------------------------------------------------------------------------

Handler = Callable[[re.Match[str], _Ctx], Range | None]
_RULES: list[tuple[re.Pattern[str], Handler]] = []

# ASCII word boundaries: ``\b`` sees CJK characters as word characters, so "2024-05-01的照片"
# would not match with it.
A0, A1 = r"(?<![A-Za-z0-9])", r"(?![A-Za-z0-9])"
EN_NUM = r"(?P<n>\d{1,3}|a\s+couple\s+of|couple\s+of|a\s+few|few|several|an?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)"  # noqa: E501
EN_UNIT = r"(?P<unit>day|week|month|year)s?"
EN_MONTHS = {name.lower(): i + 1 for i, name in enumerate(MONTH_NAMES)}
FULL_MONTHS = set(EN_MONTHS)
EN_MONTHS |= {n[:3]: i for n, i in EN_MONTHS.items()} | {"sept": 9}
EN_MON = "(?P<mon>" + "|".join(sorted(EN_MONTHS, key=len, reverse=True)) + ")"
EN_SEASONS = {"spring": 3, "summer": 6, "autumn": 9, "fall": 9, "winter": 12}
EN_WEEKDAYS = "monday tuesday wednesday thursday friday saturday sunday".split()
EN_REL = {"this": "this", "last": "last", "previous": "last", "past": "last", "next": "next"}
ZH_NUM = r"(?<!\d)(?P<n>\d{1,3}|[零〇一二两三四五六七八九十]{1,3}|几|半)"
ZH_UNITS = {"天": "day", "日": "day", "周": "week", "星期": "week", "礼拜": "week",
            "月": "month", "年": "year"}  # fmt: skip
ZH_UNIT = r"(?P<unit>天|日|周|星期|礼拜|月|年)"
ZH_REL = {"上上": "prev2", "上": "last", "这": "this", "本": "this", "下": "next"}
ZH_REL_K = {"prev2": -2, "last": -1, "this": 0, "next": 1}
ZH_YEAR_REL = {"大前年": -3, "前年": -2, "去年": -1, "今年": 0, "明年": 1}
ZH_YEAR_BARE = r"(?:(?P<y>\d{4})年|(?P<yrel>大前年|前年|去年|今年|明年))"
ZH_YEAR = "(?:" + ZH_YEAR_BARE + "的?)"
ZH_SEASONS = {"春": (3, 3), "夏": (6, 3), "秋": (9, 3), "冬": (12, 3),
              "暑假": (7, 2), "寒假": (1, 2)}  # fmt: skip
ZH_WEEKDAYS = {c: i for i, c in enumerate("一二三四五六")} | {"日": 6, "天": 6}
ZH_WEEKDAYS |= {str(i + 1): i for i in range(7)}


def _rule(pattern: str, flags: int = 0) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        _RULES.append((re.compile(pattern, flags | re.IGNORECASE), fn))
        return fn

    return register


def _year_of(m: re.Match[str], c: _Ctx) -> int | None:
    if m.group("y"):
        return int(m.group("y"))
    if m.group("yrel"):
        return c.today.year + ZH_YEAR_REL[m.group("yrel")]
    return None


# English -----------------------------------------------------------------------------------


@_rule(A0 + r"(?:the\s+)?day\s+before\s+yesterday" + A1)
def _en_day_before(m: re.Match[str], c: _Ctx) -> Range:
    return _day(c.today - 2 * DAY)


@_rule(A0 + r"(?:yesterday|last\s+night)" + A1)
def _en_yesterday(m: re.Match[str], c: _Ctx) -> Range:
    return _day(c.today - DAY)


@_rule(A0 + r"(?:today|tonight|this\s+(?:morning|afternoon|evening))" + A1)
def _en_today(m: re.Match[str], c: _Ctx) -> Range:
    return _day(c.today)


@_rule(A0 + r"(?P<rel>this|last|previous|next|past)\s+(?P<unit>week|month|year)" + A1)
def _en_calendar(m: re.Match[str], c: _Ctx) -> Range:
    rel, unit = m.group("rel").lower(), m.group("unit").lower()
    if rel == "past":  # "the past week" is the last 7 days, not the previous calendar week
        return c.rolling(1, unit)
    return c.calendar(unit, ZH_REL_K[EN_REL[rel]])


@_rule(A0 + r"(?:(?P<rel>this|last|previous|next|past)|over\s+the|on\s+the)\s+weekend" + A1)
def _en_weekend(m: re.Match[str], c: _Ctx) -> Range:
    rel = EN_REL.get((m.group("rel") or "").lower())
    return c.weekend(ZH_REL_K[rel] if rel else None)


@_rule(A0 + EN_NUM + r"\s+" + EN_UNIT + r"\s+ago" + A1)
def _en_ago(m: re.Match[str], c: _Ctx) -> Range:
    return c.ago(_en_int(m.group("n")), m.group("unit").lower())


@_rule(A0 + r"(?:last|past)\s+" + EN_NUM + r"\s+" + EN_UNIT + A1)
def _en_rolling(m: re.Match[str], c: _Ctx) -> Range:
    return c.rolling(_en_int(m.group("n")), m.group("unit").lower())


@_rule(A0 + EN_MON + r"\.?\s+(?P<d>\d{1,2})(?:st|nd|rd|th)?(?:,?\s+(?P<y>\d{4}))?" + A1)
@_rule(
    A0 + r"(?P<d>\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?" + EN_MON + r"\.?(?:,?\s+(?P<y>\d{4}))?" + A1
)
def _en_day_of_month(m: re.Match[str], c: _Ctx) -> Range | None:
    mon, d = EN_MONTHS[m.group("mon").lower()], int(m.group("d"))
    if m.group("y"):
        t = _date(int(m.group("y")), mon, d)
        return _day(t) if t else None
    return c.recent_day(mon, d)


@_rule(A0 + EN_MON + r"\.?,?\s+(?:of\s+)?(?P<y>\d{4})" + A1)
def _en_month_year(m: re.Match[str], c: _Ctx) -> Range:
    return _months(int(m.group("y")), EN_MONTHS[m.group("mon").lower()], 1)


@_rule(A0 + r"(?:(?P<rel>last|this|next)\s+)?" + EN_MON + A1)
def _en_month(m: re.Match[str], c: _Ctx) -> Range | None:
    word, rel = m.group("mon"), (m.group("rel") or "").lower() or None
    before = m.string[: m.start()].lower()
    qualified = rel is not None or re.search(r"(?:in|during|since|of)\s+$", before) is not None
    # Bare month names collide with words ("may", "jan"): a bare one counts only when it is a
    # full name, and "may" only when written "May".
    if not qualified and (word.lower() not in FULL_MONTHS or word in ("may", "MAY")):
        return None
    return c.month(EN_MONTHS[word.lower()], rel)


@_rule(
    A0 + r"(?:(?P<rel>last|this|next|past)\s+)?(?P<s>spring|summer|autumn|fall|winter)"
    r"(?:\s+(?:of\s+)?(?P<y>\d{4}))?" + A1
)
@_rule(A0 + r"(?P<y>\d{4})\s+(?P<s>spring|summer|autumn|fall|winter)" + A1)
def _en_season(m: re.Match[str], c: _Ctx) -> Range | None:
    sm = EN_SEASONS[m.group("s").lower()]
    rel = EN_REL.get((m.groupdict().get("rel") or "").lower())
    if m.group("y"):
        return _months(int(m.group("y")), sm, 3)
    before = m.string[: m.start()].lower()
    if rel is None and m.group("s").lower() == "fall" and not before.endswith("in the "):
        return None  # "a fall", "the falls"; "in the fall" is the season
    return c.season(sm, rel)


@_rule(A0 + r"(?P<y>\d{4})[-/.](?P<m>\d{1,2})[-/.](?P<d>\d{1,2})" + A1)
def _iso_day(m: re.Match[str], c: _Ctx) -> Range | None:
    t = _date(int(m.group("y")), int(m.group("m")), int(m.group("d")))
    return _day(t) if t else None


@_rule(A0 + r"(?P<y>(?:19|20)\d{2})[-/](?P<m>\d{1,2})" + A1)
def _iso_month(m: re.Match[str], c: _Ctx) -> Range | None:
    mon = int(m.group("m"))
    return _months(int(m.group("y")), mon, 1) if 1 <= mon <= 12 else None


@_rule(A0 + r"(?P<y>(?:19|20)\d{2})" + A1)
def _en_year(m: re.Match[str], c: _Ctx) -> Range:
    return _year(int(m.group("y")))


@_rule(A0 + r"(?:recent(?:ly)?|lately)" + A1)
def _en_recent(m: re.Match[str], c: _Ctx) -> Range:
    return c.rolling(30, "day")


@_rule(A0 + r"earlier\s+this\s+(?P<unit>week|month|year)" + A1)
def _en_earlier(m: re.Match[str], c: _Ctx) -> Range:
    return c.since_start(m.group("unit").lower())


@_rule(
    A0 + r"(?:(?P<part>early|mid|late)[-\s]+|(?:the\s+)?(?P<edge>beginning|start|end)\s+of\s+)"
    r"(?:(?P<y>\d{4})|(?:the\s+)?(?P<rel>this|last|next)?\s*year)" + A1
)
def _en_year_part(m: re.Match[str], c: _Ctx) -> Range:
    part = (m.group("part") or "").lower() or ("late" if m.group("edge") == "end" else "early")
    rel = EN_REL.get((m.group("rel") or "this").lower(), "this")
    y = int(m.group("y")) if m.group("y") else c.today.year + ZH_REL_K[rel]
    return _year_part(y, part)


@_rule(A0 + r"(?:(?P<rel>last|this|next|on)\s+)?(?P<wd>" + "|".join(EN_WEEKDAYS) + ")" + A1)
def _en_weekday(m: re.Match[str], c: _Ctx) -> Range:
    rel, wd = (m.group("rel") or "").lower(), EN_WEEKDAYS.index(m.group("wd").lower())
    # "last Friday" is the most recent Friday before today; "this"/"next" name a week.
    return c.weekday(wd, {"this": 0, "next": 1}.get(rel), before=rel == "last")


# Chinese -----------------------------------------------------------------------------------

ZH_DAYS = {"大前天": -3, "前天": -2, "昨天": -1, "昨日": -1, "昨晚": -1, "今天": 0, "今日": 0,
           "今晚": 0, "今早": 0}  # fmt: skip


@_rule("|".join(ZH_DAYS))
def _zh_day(m: re.Match[str], c: _Ctx) -> Range:
    return _day(c.today + ZH_DAYS[m.group()] * DAY)


# Lookaheads keep 周边/周围/周年 (surroundings, anniversary) and 月亮/月光 (moon) out.
@_rule(r"(?P<rel>上上|上|这|本|下)个?(?:周|週|星期|礼拜)(?![边围年岁])")
def _zh_week(m: re.Match[str], c: _Ctx) -> Range:
    return c.calendar("week", ZH_REL_K[ZH_REL[m.group("rel")]])


@_rule(r"(?:(?P<rel>上上|上|这|本|下)个?)?(?:周末|週末)")
def _zh_weekend(m: re.Match[str], c: _Ctx) -> Range:
    rel = m.group("rel")
    return c.weekend(ZH_REL_K[ZH_REL[rel]] if rel else None)


@_rule(r"(?:(?P<rel>上上|上|这|本|下)个?)?(?:周|星期|礼拜)(?P<wd>[一二三四五六日天1-7])")
def _zh_weekday(m: re.Match[str], c: _Ctx) -> Range:
    rel = m.group("rel")
    return c.weekday(ZH_WEEKDAYS[m.group("wd")], ZH_REL_K[ZH_REL[rel]] if rel else None)


@_rule(r"(?P<rel>上上|上|这|本|下)个?月(?![亮光饼球])")
def _zh_month_rel(m: re.Match[str], c: _Ctx) -> Range:
    return c.calendar("month", ZH_REL_K[ZH_REL[m.group("rel")]])


@_rule("|".join(ZH_YEAR_REL))
def _zh_year_rel(m: re.Match[str], c: _Ctx) -> Range:
    return _year(c.today.year + ZH_YEAR_REL[m.group()])


@_rule(ZH_NUM + r"个?" + ZH_UNIT + r"(?:前|以前|之前)")
def _zh_ago(m: re.Match[str], c: _Ctx) -> Range | None:
    unit, n = ZH_UNITS[m.group("unit")], m.group("n")
    if n == "几":  # "几天前": a few units back, as a window
        return c.rolling(7 if unit == "day" else 3, unit)
    if n == "半":
        return c.ago(6, "month") if unit == "year" else None
    count = _cn_int(n)
    return c.ago(count, unit) if count is not None else None


@_rule(r"(?:最近|过去|近|这)的?" + ZH_NUM + r"个?" + ZH_UNIT)
@_rule(ZH_NUM + r"个?" + ZH_UNIT + r"(?:以内|之内|内|以来)")
def _zh_rolling(m: re.Match[str], c: _Ctx) -> Range | None:
    n, unit = m.group("n"), ZH_UNITS[m.group("unit")]
    if n == "半":
        return c.rolling(6, "month") if unit == "year" else None
    count = (7 if unit == "day" else 3) if n == "几" else _cn_int(n)
    return c.rolling(count, unit) if count else None


@_rule(r"前(?P<n>几|两|三)天")
def _zh_few_days(m: re.Match[str], c: _Ctx) -> Range:
    return c.rolling(7 if m.group("n") == "几" else int(_cn_int(m.group("n")) or 3), "day")


@_rule(r"最近|近期|近来|前段时间|前些日子|前些天|这段时间")
def _zh_recent(m: re.Match[str], c: _Ctx) -> Range:
    return c.rolling(30, "day")


@_rule(
    ZH_YEAR + r"?(?<!\d)(?P<m>1[0-2]|0?[1-9]|十[一二]?|[一二三四五六七八九])月份?"
    r"(?:(?P<d>3[01]|[12]\d|0?[1-9]|[二三]?十[一二三四五六七八九]?|[一二三四五六七八九])[日号])?"
)
def _zh_month_day(m: re.Match[str], c: _Ctx) -> Range | None:
    mon, y = _cn_int(m.group("m")), _year_of(m, c)
    if not mon or not 1 <= mon <= 12:
        return None
    if m.group("d"):
        d = _cn_int(m.group("d"))
        if d is None:
            return None
        if y is None:
            return c.recent_day(mon, d)
        t = _date(y, mon, d)
        return _day(t) if t else None
    return _months(y, mon, 1) if y is not None else c.month(mon, None)


@_rule(r"(?<!\d)(?P<y>\d{4})年|(?<!\d)(?P<yy>\d{2})年(?![前后来内间多])")
def _zh_year_number(m: re.Match[str], c: _Ctx) -> Range:
    if m.group("y"):
        return _year(int(m.group("y")))
    yy = int(m.group("yy"))  # "23年": the most recent such year
    return _year(2000 + yy if 2000 + yy <= c.today.year else 1900 + yy)


@_rule(ZH_YEAR + r"?(?P<s>春|夏|秋|冬)(?:天|季)")
@_rule(ZH_YEAR + r"?(?P<s>暑假|寒假)")
def _zh_season(m: re.Match[str], c: _Ctx) -> Range:
    sm, n = ZH_SEASONS[m.group("s")]
    if m.group("yrel") == "今年":
        return c.season(sm, "this", n)
    y = _year_of(m, c)
    return _months(y, sm, n) if y is not None else c.season(sm, None, n)


ZH_PARTS = {"初": "early", "年初": "early", "底": "late", "末": "late", "年底": "late",
            "年末": "late", "年中": "mid", "上半年": "h1", "下半年": "h2"}  # fmt: skip


@_rule(ZH_YEAR_BARE + r"?(?P<part>上半年|下半年|年初|年底|年末|年中|初|底|末)")
def _zh_year_part(m: re.Match[str], c: _Ctx) -> Range | None:
    part, y = m.group("part"), _year_of(m, c)
    if y is None and len(part) == 1:  # "初", "底" alone are parts of other words
        return None
    return _year_part(y if y is not None else c.today.year, ZH_PARTS[part])


# --- entry point ---------------------------------------------------------------------------


def parse_times(text: str, now: datetime) -> list[TimeMatch]:
    """Every time expression in ``text``, resolved against ``now``, in text order.

    Overlapping candidates resolve to the longest (then the earliest); ranges are naive local
    datetimes, end exclusive.
    """
    ctx = _Ctx(now.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None))
    found: list[tuple[int, int, Range]] = []
    for pattern, handler in _RULES:
        for m in pattern.finditer(text):
            if m.end() > m.start() and (rng := handler(m, ctx)) is not None:
                found.append((m.start(), m.end(), rng))
    found.sort(key=lambda f: (f[0] - f[1], f[0]))
    taken: list[tuple[int, int, Range]] = []
    for start, end, rng in found:
        if all(end <= s or start >= e for s, e, _ in taken):
            taken.append((start, end, rng))
    taken.sort()
    return [TimeMatch(r[0], r[1], (s, e), describe(*r)) for s, e, r in taken]
