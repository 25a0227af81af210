"""Cheap, domain-neutral text features of a prompt for the difficulty router.

Everything here is computed from the prompt text alone with the standard library and numpy,
so it runs on device before routing. The features describe size, structure and quantitative
load (how many numbers and relations a reader must track); none of them name a benchmark, so
they carry over from math word problems to other question styles.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np

_NUMBER = re.compile(r"(?<![\w.])[-+]?\d[\d,]*(?:\.\d+)?")
_FRACTION = re.compile(r"\b\d+\s*/\s*\d+\b")
_DECIMAL = re.compile(r"\b\d+\.\d+\b")
_PERCENT = re.compile(r"\d\s*%|\bpercent(?:age)?s?\b", re.I)
_MONEY = re.compile(
    r"[$€£¥]\s*\d|\b(?:dollars?|cents?|euros?|pounds? sterling|price|cost|paid|pay)\b", re.I
)
_WORD = re.compile(r"[A-Za-z']+|\d[\d,.]*")
_SENTENCE = re.compile(r"[^.!?\n]+[.!?]?")
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
_CHOICE_MARK = re.compile(r"(?m)^\s*\(?[A-Ha-h][).:]\s+|\s\([A-Ha-h]\)\s")

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


def _to_float(token: str) -> float | None:
    try:
        return float(token.replace(",", ""))
    except ValueError:
        return None


def extract(prompt: str) -> np.ndarray:
    """Feature vector for one prompt, ordered as ``FEATURE_NAMES``.

    Counts go through log1p because difficulty grows roughly with the log of size and
    the raw counts have long tails that would dominate a linear model.
    """
    text = prompt.strip()
    lower = text.lower()
    words = _WORD.findall(text)
    lower_words = [w.lower().strip("'") for w in words]
    n_words = max(len(words), 1)
    sentences = [s for s in _SENTENCE.findall(text) if s.strip()]
    n_sent = max(len(sentences), 1)

    numbers = [v for v in (_to_float(t) for t in _NUMBER.findall(text)) if v is not None]
    word_numbers = sum(w in _WORD_NUMBERS for w in lower_words)
    quantities = len(numbers) + word_numbers
    unit_words = [w for w in lower_words if w in _UNITS]
    relations = sum(w in _RELATIONS for w in lower_words)
    digits = sum(ch.isdigit() for ch in text)
    # Capitalized words past a sentence start are mostly names: more actors, more state to track.
    capitalized = _CAPITALIZED.findall(text)
    vocab = set(lower_words)

    # The question is usually the last sentence; its opener says what kind of answer is asked.
    last = sentences[-1].strip().lower() if sentences else ""
    qidx = max(lower.rfind("how "), lower.rfind("what"), lower.rfind("which"))
    qtext = lower[qidx:] if qidx >= 0 else last
    q_how_many = qtext.startswith("how many")
    q_how_much = qtext.startswith("how much")
    q_what = qtext.startswith(("what", "which"))
    q_other = not (q_how_many or q_how_much or q_what)

    return np.array(
        [
            math.log1p(len(text)),
            math.log1p(len(words)),
            math.log1p(len(sentences)),
            len(words) / n_sent,
            sum(len(w) for w in words) / n_words,
            sum(len(w) >= 8 for w in words) / n_words,
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
            float(len(unit_words)),
            float(len(set(unit_words))),
            float(relations),
            relations / n_words,
            float(sum(w in _CONDITIONS for w in lower_words)),
            float(sum(w in _NEGATIONS for w in lower_words)),
            float(len(capitalized)),
            float(len(set(capitalized))),
            float(lower_words.count("and")),
            float(sum(w in _SCALING for w in lower_words)),
            float(sum(any(ch.isdigit() for ch in s) for s in sentences)),
            math.log1p(len(vocab)),
            len(vocab) / n_words,
            float(text.count(",")),
            float(text.count("?")),
            float(text.count("\n")),
            float(text.count("(")),
            float(len(_CHOICE_MARK.findall(text))),
            float(q_how_many),
            float(q_how_much),
            float(q_what),
            float(q_other),
            float(text.rstrip().endswith("?")),
        ],
        dtype=np.float64,
    )


def extract_many(prompts: Sequence[str]) -> np.ndarray:
    """Feature matrix (n, len(FEATURE_NAMES))."""
    if not prompts:
        return np.zeros((0, len(FEATURE_NAMES)))
    return np.stack([extract(p) for p in prompts])
