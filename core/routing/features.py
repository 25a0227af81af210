"""Cheap, domain-neutral text features of a prompt for the difficulty router.

Everything here is computed from the prompt text alone with the standard library and numpy,
so it runs on device before routing. The features describe size, structure and quantitative
load (how many numbers and relations a reader must track); none of them name a benchmark, so
they carry over from math word problems to other question styles.

Chinese text counts the same things: each Han character is a word, 。！？ end sentences, and
numerals with a measure word ("三个", "两小时"), 百分之, 元/块 and Chinese relation, condition
and question words feed the same columns as their English counterparts, so one router serves
both. (Digits glued to Han characters, "有3个", are numbers too.)
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

_NUMBER = re.compile(r"(?<![A-Za-z0-9_.])[-+]?\d[\d,]*(?:\.\d+)?")
_FRACTION = re.compile(r"\b\d+\s*/\s*\d+\b")
_DECIMAL = re.compile(r"\b\d+\.\d+\b")
_PERCENT = re.compile(r"\d\s*[%％]|\bpercent(?:age)?s?\b|百分之|折", re.I)
_MONEY = re.compile(
    r"[$€£¥￥]\s*\d|\b(?:dollars?|cents?|euros?|pounds? sterling|price|cost|paid|pay)\b"
    r"|[元块角]钱?|价格|价钱|费用|花了|付了|工资",
    re.I,
)
HAN_RANGES = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # CJK ideographs, for regex classes
_WORD = re.compile(rf"[A-Za-z']+|\d[\d,.]*|[{HAN_RANGES}]")
_HAS_HAN = re.compile(rf"[{HAN_RANGES}]")
_ANY_DIGIT = re.compile(r"\d")
_SENTENCE = re.compile(r"[^.!?\n。！？]+[.!?。！？]?")
_CAPITALIZED = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z]+")

# Spelled-out quantities count as much load as digits ("three", "twice", "a dozen").
_WORD_NUMBERS = frozenset(
    "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety "
    "hundred thousand million billion half halves third thirds quarter quarters dozen dozens "
    "twice thrice double triple quadruple".split()
)
_UNITS = frozenset(
    "second seconds minute minutes hour hours day days week weeks month months year years "
    "inch inches foot feet yard yards mile miles meter meters metre metres km cm mm kilometer "
    "kilometers gram grams kg kilogram kilograms pound pounds ounce ounces ton tons liter "
    "liters litre litres gallon gallons cup cups mph degrees".split()
)
# Relations between quantities: each one is an extra step the solver has to get right.
_RELATIONS = frozenset(
    "more less fewer than times twice half per each every rate ratio average total remaining "
    "remainder left rest difference sum product increase decrease increased decreased "
    "discount profit interest split share shared divide divided equally respectively".split()
)
_CONDITIONS = frozenset("if then after before until when while unless except only".split())
_NEGATIONS = frozenset("not no never none neither nor without cannot isn't doesn't don't".split())
# Scaling words tie one quantity to another multiplicatively, a classic source of slips.
_SCALING = frozenset("times twice half double triple thrice quarter third".split())
_CHOICE_MARK = re.compile(r"(?m)^\s*\(?[A-Ha-h][).:]\s+|^\s*[A-H][、．]|\s\([A-Ha-h]\)\s")

# Chinese counterparts, matched on the text: Chinese has no spaces to split words on.
_CN_QUANTITY = re.compile(
    r"[零〇一二两三四五六七八九十百千万亿]+"
    r"(?:[个只本元块条张天年月日周岁斤克米次倍分位名辆件份杯瓶盒箱页道棵颗朵头匹层台支]"
    r"|小时|分钟|公里|千米|公斤|千克|厘米|毫升|星期)|半"
)
_CN_UNITS = re.compile(r"小时|分钟|秒|天|星期|周|月|年|公里|千米|厘米|米|公斤|千克|克|斤|毫升|升")
_CN_RELATIONS = re.compile(
    r"多(?!少)|少|比|倍|半|每|又|平均|总共|一共|剩|差|增加|减少|折扣|利润|利息|平分|分给|分成|各"
)
_CN_CONDITIONS = re.compile(r"如果|假如|那么|之后|以后|之前|以前|直到|当|除非|只有|然后")
_CN_NEGATIONS = re.compile(r"不|没|无|未|别")
_CN_SCALING = re.compile(r"倍|半|分之")
_CN_CONJUNCTIONS = re.compile(r"和|并且|而且|以及")
_CN_HOW_MUCH = re.compile(r"多少钱|多少元|多少块")
_CN_HOW_MANY = re.compile(r"多少|几")
_CN_WHAT = re.compile(r"什么|哪")

FEATURE_NAMES: tuple[str, ...] = (
    "log_chars",
    "log_words",
    "log_sentences",
    "words_per_sentence",
    "mean_word_len",
    "long_word_frac",
    "log_numbers",
    "log_word_numbers",
    "log_quantities",
    "distinct_numbers",
    "log_max_number",
    "numbers_per_sentence",
    "digits_per_word",
    "decimals",
    "fractions",
    "percents",
    "money",
    "units",
    "distinct_units",
    "relations",
    "relation_density",
    "conditions",
    "negations",
    "capitalized",
    "distinct_names",
    "conjunctions",
    "scaling",
    "sentences_with_numbers",
    "log_vocab",
    "type_token_ratio",
    "commas",
    "questions",
    "newlines",
    "parens",
    "choices",
    "q_how_many",
    "q_how_much",
    "q_what_which",
    "q_other",
    "question_last",
)


# Routing runs on every request, so a 200,000-character document must not take 150-300 ms
# to describe. Past this size the features read the first 2,000 and last 1,000 characters:
# the task or question of a long prompt sits at one of its ends, and every size feature has
# long saturated by then. (GSM8K prompts are all far shorter: their features are unchanged.)
MAX_CHARS = 3_000
_HEAD_CHARS = 2_000


def window(prompt: str) -> str:
    """The stripped prompt, or its head and tail when it is longer than ``MAX_CHARS``."""
    text = prompt.strip()
    if len(text) > MAX_CHARS:
        text = text[:_HEAD_CHARS] + "\n" + text[len(text) - (MAX_CHARS - _HEAD_CHARS) :]
    return text


def _to_float(token: str) -> float | None:
    try:
        return float(token.replace(",", ""))
    except ValueError:
        return None


def extract(prompt: str) -> np.ndarray:
    """Feature vector for one prompt, ordered as ``FEATURE_NAMES``.

    Counts go through log1p because difficulty grows roughly with the log of size and
    the raw counts have long tails that would dominate a linear model. A prompt longer than
    ``MAX_CHARS`` is read as its head and tail (see there).
    """
    text = window(prompt)
    lower = text.lower()
    # Tokenized once, lowercased: case changes no token's length, only its spelling.
    words = _WORD.findall(lower)
    lower_words = [w.strip("'") if "'" in w else w for w in words]
    n_words = max(len(words), 1)
    sentences = [s for s in _SENTENCE.findall(text) if s.strip()]
    n_sent = max(len(sentences), 1)

    numbers = [v for v in (_to_float(t) for t in _NUMBER.findall(text)) if v is not None]
    # Counted over distinct words: a Chinese text has one word per character.
    counts = Counter(lower_words)

    def occurrences(vocabulary: frozenset[str]) -> int:
        return sum(n for w, n in counts.items() if w in vocabulary)

    word_numbers = occurrences(_WORD_NUMBERS)
    units = occurrences(_UNITS)
    distinct_units = {w for w in counts if w in _UNITS}
    relations = occurrences(_RELATIONS)
    conditions = occurrences(_CONDITIONS)
    negations = occurrences(_NEGATIONS)
    scaling = occurrences(_SCALING)
    conjunctions = counts["and"]
    han = _HAS_HAN.search(text) is not None
    if han:
        word_numbers += len(_CN_QUANTITY.findall(text))
        cn_units = _CN_UNITS.findall(text)
        units += len(cn_units)
        distinct_units.update(cn_units)
        relations += len(_CN_RELATIONS.findall(text))
        conditions += len(_CN_CONDITIONS.findall(text))
        negations += len(_CN_NEGATIONS.findall(text))
        scaling += len(_CN_SCALING.findall(text))
        conjunctions += len(_CN_CONJUNCTIONS.findall(text))
    quantities = len(numbers) + word_numbers
    digits = sum(map(str.isdigit, text))
    # Capitalized words past a sentence start are mostly names: more actors, more state to track.
    capitalized = _CAPITALIZED.findall(text)
    vocab = counts.keys()

    # The question is usually the last sentence; its opener says what kind of answer is asked.
    last = sentences[-1].strip().lower() if sentences else ""
    qidx = max(lower.rfind("how "), lower.rfind("what"), lower.rfind("which"))
    qtext = lower[qidx:] if qidx >= 0 else last
    q_how_many = qtext.startswith("how many")
    q_how_much = qtext.startswith("how much")
    q_what = qtext.startswith(("what", "which"))
    if han and qidx < 0 and last:
        # A Chinese question word sits inside its sentence, and options may follow it.
        asked = [s for s in sentences if s.rstrip().endswith("？")]
        qsent = asked[-1] if asked else last
        q_how_much = bool(_CN_HOW_MUCH.search(qsent))
        q_how_many = not q_how_much and bool(_CN_HOW_MANY.search(qsent))
        q_what = not (q_how_much or q_how_many) and bool(_CN_WHAT.search(qsent))
    q_other = not (q_how_many or q_how_much or q_what)

    return np.array(
        [
            math.log1p(len(text)),
            math.log1p(len(words)),
            math.log1p(len(sentences)),
            len(words) / n_sent,
            sum(map(len, words)) / n_words,
            sum(1 for w in words if len(w) >= 8) / n_words,
            math.log1p(len(numbers)),
            math.log1p(word_numbers),
            math.log1p(quantities),
            float(len(set(numbers))),
            math.log1p(max((abs(v) for v in numbers), default=0.0)),
            quantities / n_sent,
            digits / n_words,
            float(len(_DECIMAL.findall(text))),
            float(len(_FRACTION.findall(text))),
            float(len(_PERCENT.findall(text))),
            float(len(_MONEY.findall(text))),
            float(units),
            float(len(distinct_units)),
            float(relations),
            relations / n_words,
            float(conditions),
            float(negations),
            float(len(capitalized)),
            float(len(set(capitalized))),
            float(conjunctions),
            float(scaling),
            float(sum(1 for s in sentences if _ANY_DIGIT.search(s))),
            math.log1p(len(vocab)),
            len(vocab) / n_words,
            float(sum(text.count(mark) for mark in ",，、")),
            float(text.count("?") + text.count("？")),
            float(text.count("\n")),
            float(text.count("(") + text.count("（")),
            float(len(_CHOICE_MARK.findall(text))),
            float(q_how_many),
            float(q_how_much),
            float(q_what),
            float(q_other),
            float(text.rstrip().endswith(("?", "？"))),
        ],
        dtype=np.float64,
    )


def extract_many(prompts: Sequence[str]) -> np.ndarray:
    """Feature matrix (n, len(FEATURE_NAMES))."""
    if not prompts:
        return np.zeros((0, len(FEATURE_NAMES)))
    return np.stack([extract(p) for p in prompts])
