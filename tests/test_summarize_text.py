"""Tests for the summarization skill's pure-text helpers (no model needed)."""

from __future__ import annotations

import re

import pytest

from aios.plugins import summarize_text as st


def _words(s: str) -> int:
    return len(s.split())


def _half_chars(s: str) -> int:
    return len(s) // 2


def _squash(s: str) -> str:
    return re.sub(r"\s+", "", s)


# --- detect_language ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The quick brown fox jumps over the lazy dog.", "en"),
        ("北京市政府周二宣布，将投资建设新的地铁线路。", "zh"),
        ("我们今天用Python写代码，效果很好。", "zh"),
        ("The word 你好 means hello and is the most common greeting in Chinese.", "en"),
        ("", "en"),
        ("12345 !!!", "en"),
    ],
)
def test_detect_language(text: str, expected: str) -> None:
    assert st.detect_language(text) == expected


# --- split_sentences ---------------------------------------------------------------


def test_split_sentences_english_abbreviations_and_decimals() -> None:
    text = (
        "Mr. Smith paid $3.5 million for a house in the U.S. last year. "
        "Dr. Lee agreed, e.g. on the price! Was it worth it? Yes."
    )
    assert st.split_sentences(text) == [
        "Mr. Smith paid $3.5 million for a house in the U.S. last year.",
        "Dr. Lee agreed, e.g. on the price!",
        "Was it worth it?",
        "Yes.",
    ]


def test_split_sentences_quotes_and_soft_abbreviations() -> None:
    text = 'He said "Stop." Then he left. We bought apples, pears, etc. Then we went home.'
    assert st.split_sentences(text) == [
        'He said "Stop."',
        "Then he left.",
        "We bought apples, pears, etc.",
        "Then we went home.",
    ]


def test_split_sentences_chinese_punctuation_and_quotes() -> None:
    text = "北京今天下雨。他说：“明天会晴吗？”我不知道！好吧；走吧"
    assert st.split_sentences(text) == [
        "北京今天下雨。",
        "他说：“明天会晴吗？”",
        "我不知道！",
        "好吧；",
        "走吧",
    ]


def test_split_sentences_blank_lines_are_boundaries() -> None:
    text = "  Heading without a period\n\nFirst line\ncontinues here. Second one.\n\n\n第三段"
    assert st.split_sentences(text) == [
        "Heading without a period",
        "First line\ncontinues here.",
        "Second one.",
        "第三段",
    ]


# --- chunk_text ----------------------------------------------------------------------


def test_chunk_text_packs_whole_paragraphs() -> None:
    paras = [
        "One two three four five.",
        "Six seven eight nine ten eleven.",
        "A b c d e f g.",
    ]
    chunks = st.chunk_text("\n\n".join(paras), 12, _words)
    # 5 + 6 words (+1 join allowance) fit in 12; the third paragraph does not.
    assert chunks == [paras[0] + "\n\n" + paras[1], paras[2]]


def test_chunk_text_prefers_paragraph_boundaries() -> None:
    paras = [" ".join(f"p{p}w{i}" for i in range(8)) + "." for p in range(6)]
    text = "\n\n".join(paras)
    chunks = st.chunk_text(text, 20, _words)
    assert all(_words(c) <= 20 for c in chunks)
    # Every chunk is made of whole paragraphs: no paragraph is cut in two.
    for chunk in chunks:
        assert all(part in paras for part in chunk.split("\n\n"))
    assert [p for c in chunks for p in c.split("\n\n")] == paras
    assert len(chunks) == 3


def test_chunk_text_splits_long_paragraph_at_sentences() -> None:
    sentences = [f"Sentence number {i} has exactly seven words." for i in range(10)]
    intro = "Short intro paragraph."
    text = intro + "\n\n" + " ".join(sentences)
    chunks = st.chunk_text(text, 16, _words)
    assert all(_words(c) <= 16 for c in chunks)
    assert _squash("".join(chunks)) == _squash(text)
    # The oversized paragraph starts a fresh chunk, and cuts fall between sentences.
    assert chunks[0] == intro
    assert chunks[1] == sentences[0] + " " + sentences[1]
    for chunk in chunks[1:]:
        assert st.split_sentences(chunk)[-1] in sentences


def test_chunk_text_hard_splits_giant_sentence_at_spaces() -> None:
    text = " ".join(f"w{i:03d}" for i in range(400))  # no punctuation at all
    chunks = st.chunk_text(text, 50, _half_chars)
    assert len(chunks) > 1
    assert all(_half_chars(c) <= 50 for c in chunks)
    assert _squash("".join(chunks)) == _squash(text)
    assert all(re.fullmatch(r"w\d{3}( w\d{3})*", c) for c in chunks)  # no word cut in two


def test_chunk_text_hard_splits_chinese_without_spaces() -> None:
    text = "这是一个没有任何标点符号而且非常非常长的中文句子" * 40
    chunks = st.chunk_text(text, 64, len)
    assert len(chunks) >= len(text) // 64
    assert all(len(c) <= 64 for c in chunks)
    assert "".join(chunks) == text


def test_chunk_text_verifies_when_join_costs_more_than_estimated() -> None:
    # Counting characters: the "\n\n" join costs 2, more than the 1-token allowance.
    text = "aaaa\n\nbbbb\n\ncccc"
    chunks = st.chunk_text(text, 9, len)
    assert chunks == ["aaaa", "bbbb", "cccc"]
    assert st.chunk_text(text, 10, len) == ["aaaa\n\nbbbb", "cccc"]


def test_chunk_text_counts_tokens_linearly() -> None:
    calls = 0

    def counting(s: str) -> int:
        nonlocal calls
        calls += 1
        return _words(s)

    text = " ".join(f"This is sentence {i} of a long paragraph." for i in range(200))
    chunks = st.chunk_text(text, 40, counting)
    assert all(_words(c) <= 40 for c in chunks)
    assert calls <= 1 + 200 + len(chunks)


def test_chunk_text_edge_cases() -> None:
    assert st.chunk_text("   \n\n  ", 10, _words) == []
    assert st.chunk_text("Short text.", 10, _words) == ["Short text."]
    with pytest.raises(ValueError):
        st.chunk_text("text", 0, _words)


# --- clean_output --------------------------------------------------------------------


def test_clean_output_merges_blank_line_separated_list() -> None:
    raw = "\n\n1. 投资5亿元建设地铁线路\n\n2. 交通拥堵问题\n\n3. 减少居民生活的影响"
    assert st.clean_output(raw) == "投资5亿元建设地铁线路。交通拥堵问题。减少居民生活的影响。"


def test_clean_output_strips_html_in_bullet_list() -> None:
    raw = (
        "* <strong>北京市政府周二宣布，将在未来三年内投资五十亿元建设新的地铁线路</strong>\n"
        "* <strong>市民普遍对这一计划表示欢迎</strong>"
    )
    assert st.clean_output(raw) == (
        "北京市政府周二宣布，将在未来三年内投资五十亿元建设新的地铁线路。"
        "市民普遍对这一计划表示欢迎。"
    )


def test_clean_output_english_list_with_continuation_lines() -> None:
    raw = "- The council met\n  in the evening\n- Budget approved;\n\nUnrelated second block."
    assert st.clean_output(raw) == "The council met in the evening. Budget approved."


def test_clean_output_drops_repeats_and_trailing_fragment() -> None:
    raw = (
        " The city council voted. The library will cost $12 million. "
        "The library will cost $12 million. The library will cost"
    )
    assert st.clean_output(raw) == "The city council voted. The library will cost $12 million."


def test_clean_output_drops_near_duplicate_sentence() -> None:
    raw = "The council approved the new library. The council approved a new library. Work starts."
    assert st.clean_output(raw) == "The council approved the new library. Work starts."


@pytest.mark.parametrize(
    ("raw", "labels", "expected"),
    [
        (
            "Summary: The council approved the library.",
            ("Summary:",),
            "The council approved the library.",
        ),
        ("Summary: The council approved the library.", (), "The council approved the library."),
        ("**Summary:**\n\nThe plan passed.\n\nMore text.", ("Summary:",), "The plan passed."),
        ("一句话总结：市政府批准了地铁计划。", ("一句话总结：",), "市政府批准了地铁计划。"),
        ("Summary statistics were published.", ("Summary:",), "Summary statistics were published."),
    ],
)
def test_clean_output_removes_label_echo(raw: str, labels: tuple[str, ...], expected: str) -> None:
    assert st.clean_output(raw, prompt_labels=labels) == expected


def test_clean_output_cuts_looping_phrase() -> None:
    raw = "The council approved the plan and the city" + " and the city" * 12 + " and the"
    assert st.clean_output(raw) == "The council approved the plan and the city"


def test_clean_output_collapses_loop_and_keeps_what_follows() -> None:
    raw = "It was a very very very very good plan. The budget is $5 million."
    assert st.clean_output(raw) == "It was a very good plan. The budget is $5 million."


def test_clean_output_cuts_chinese_loop() -> None:
    raw = "市政府宣布投资建设地铁，" + "市民表示欢迎，" * 8 + "市民表"
    assert st.clean_output(raw) == "市政府宣布投资建设地铁，市民表示欢迎。"


def test_clean_output_whole_sentence_loop() -> None:
    raw = "The plan is good. " * 6 + "The plan"
    assert st.clean_output(raw) == "The plan is good."


def test_clean_output_markdown_and_whitespace() -> None:
    raw = "  The **new** library   will open\n in __May__. It has <em>three</em> floors."
    assert st.clean_output(raw) == "The new library will open in May. It has three floors."


@pytest.mark.parametrize("raw", ["", "   \n\n ", "...", "<br/>", "Summary:", "**"])
def test_clean_output_returns_empty_when_nothing_left(raw: str) -> None:
    assert st.clean_output(raw, prompt_labels=("Summary:",)) == ""


def test_clean_output_keeps_single_incomplete_sentence() -> None:
    assert st.clean_output("The council voted to approve") == "The council voted to approve"


# --- extractive_summary --------------------------------------------------------------

_EN_TEXT = """It was a rainy evening at city hall. Several residents arrived early.

On Tuesday the city council approved the plan for a new public library downtown. \
The vote was seven to two after a long debate.

Supporters said the new library would give students a quiet place to study. \
The library plan includes a children's wing. Critics worried about the cost to the city.

The library will cost about $12 million, paid by a city bond. \
Construction starts next spring. Dr. Lee, who chairs the library board, thanked the council."""

_ZH_TEXT = (
    "天气预报说周末有雨。"
    "北京市政府周二宣布，将在未来三年内投资五十亿元建设新的地铁线路。"
    "新的地铁线路将连接城市东部和西部。"
    "市民普遍对地铁建设计划表示欢迎。"
    "一些专家认为，地铁线路建设有助于缓解交通拥堵。"
    "昨天下午有一场足球比赛。"
)


def test_extractive_summary_english() -> None:
    sentences = st.split_sentences(_EN_TEXT)
    summary = st.extractive_summary(_EN_TEXT, max_sentences=2)
    picked = st.split_sentences(summary)
    assert len(picked) == 2
    assert (
        "On Tuesday the city council approved the plan for a new public library downtown." in picked
    )
    assert [sentences.index(s) for s in picked] == sorted(sentences.index(s) for s in picked)
    assert "It was a rainy evening at city hall." not in picked
    assert summary == st.extractive_summary(_EN_TEXT, max_sentences=2)  # deterministic


def test_extractive_summary_chinese() -> None:
    summary = st.extractive_summary(_ZH_TEXT, max_sentences=2)
    picked = st.split_sentences(summary)
    assert len(picked) == 2
    assert "北京市政府周二宣布，将在未来三年内投资五十亿元建设新的地铁线路。" in picked
    assert "天气预报说周末有雨。" not in picked and "昨天下午有一场足球比赛。" not in picked
    assert summary == "".join(picked)  # Chinese sentences are joined without spaces
    assert _ZH_TEXT.index(picked[0]) < _ZH_TEXT.index(picked[1])


def test_extractive_summary_limits() -> None:
    assert st.extractive_summary(_ZH_TEXT, max_sentences=0) == ""
    assert st.extractive_summary("", max_sentences=3) == ""
    everything = st.extractive_summary(_EN_TEXT, max_sentences=50)
    assert st.split_sentences(everything) == [
        re.sub(r"\s+", " ", s) for s in st.split_sentences(_EN_TEXT)
    ]
    one = st.extractive_summary(_ZH_TEXT, max_sentences=1, language="zh")
    assert one == "北京市政府周二宣布，将在未来三年内投资五十亿元建设新的地铁线路。"
