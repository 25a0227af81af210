"""Summarization on the real on-device model (Gemma 3 270M via llama-cpp-python)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from aios import Orchestrator
from aios.plugins.summarize_text import detect_language

from .conftest import run_cli

pytestmark = pytest.mark.model

LIBRARY = (
    "The city council of Springfield voted on Tuesday to approve a new public library in the "
    "downtown area. The library, which will cost 12 million dollars, is expected to open in "
    "2027. Council members said the project would create jobs and give students a quiet place "
    "to study. Some residents opposed the plan because of its cost, but the mayor said funding "
    "will come from a state grant rather than local taxes."
)
LAKE_ZH = (
    "据新华社报道，我国科学家近日在南极冰盖下发现了一个巨大的湖泊，面积约为三百平方公里。"
    "研究人员利用雷达探测技术，确认该湖泊位于冰层以下约三千米处。专家认为，这一发现有助于研究"
    "地球气候变化的历史，也可能为寻找极端环境下的生命提供线索。科考队计划明年再次前往该地区进行钻探取样。"
)


def test_english_summary_is_shorter_and_keeps_key_terms(reference: Orchestrator) -> None:
    result = reference.invoke("summarize", {"text": LIBRARY, "length": "short"})
    out, rec = result.output, result.record
    assert out.method == "abstractive" and out.language == "en"
    assert 10 < len(out.summary) < len(LIBRARY) * 0.6
    lowered = out.summary.lower()
    assert "library" in lowered and ("council" in lowered or "springfield" in lowered)
    assert not lowered.startswith(("summary", "one-sentence", "article"))  # no prompt echo
    assert rec.model == "gemma3-270m" and rec.backend == "llama_cpp" and rec.tier.value == "device"
    assert rec.tokens_in > 50 and 0 < rec.tokens_out <= 64


def test_chinese_in_chinese_out(reference: Orchestrator) -> None:
    result = reference.invoke("summarize", {"text": LAKE_ZH, "length": "short"})
    summary = result.output.summary
    assert result.output.language == "zh"
    assert detect_language(summary) == "zh", summary
    assert 4 < len(summary) < len(LAKE_ZH)
    assert "湖" in summary or "南极" in summary


def test_long_input_goes_through_map_reduce(reference: Orchestrator) -> None:
    # ~5,000 tokens: several times the 2,048-token context of the reference model.
    paragraphs = [
        f"Report {i}: the regional water authority inspected reservoir number {i} and found "
        f"that its level had fallen by {i + 3} percent since spring. Engineers recommended "
        "repairing the old pipes, installing new meters and asking farmers to water their "
        "fields at night, when less water evaporates. The authority will publish a full plan "
        "in the autumn after consulting the towns that depend on the reservoir."
        for i in range(60)
    ]
    text = "\n\n".join(paragraphs)
    result = reference.invoke("summarize", {"text": text, "length": "short"})
    assert result.output.chunks >= 3
    assert result.record.model_calls == result.output.chunks + 1
    assert any("map-reduce" in d.reason for d in result.record.reasons)
    assert 0 < len(result.output.summary) < 600


def test_streaming_matches_the_final_summary(reference: Orchestrator) -> None:
    events = list(reference.stream("summarize", {"text": LIBRARY, "length": "medium"}))
    deltas = "".join(e.delta for e in events if e.delta is not None)
    result = events[-1].result
    assert result is not None and len(events) >= 2
    assert deltas == result.output.summary
    assert result.record.ttft_ms is not None and result.record.ttft_ms < result.record.latency_ms


def test_smollm2_runs_from_the_same_matrix_with_its_chat_format(reference: Orchestrator) -> None:
    result = reference.invoke(
        "summarize", {"text": LIBRARY, "length": "short"}, model="smollm2-135m-instruct"
    )
    assert result.record.model == "smollm2-135m-instruct"
    assert 0 < len(result.output.summary) < len(LIBRARY)


def test_extractive_fallback_when_no_model_fits() -> None:
    orch = Orchestrator.from_file(None, profile="tiny-watch", strict=True)
    try:
        result = orch.invoke("summarize", {"text": LIBRARY, "length": "short"})
    finally:
        orch.close()
    assert result.record.fallback == "extractive" and result.record.model is None
    assert result.output.method == "extractive"
    assert result.output.summary in LIBRARY  # extractive: a sentence of the input
    rejected = [d for d in result.record.reasons if not d.accepted]
    assert any("device budget is 124 MB" in d.reason for d in rejected)


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, stdin=stdin)


def test_cli_summarize_file_stdin_and_text(tmp_path: Path) -> None:
    doc = tmp_path / "zh.txt"
    doc.write_text(LAKE_ZH, encoding="utf-8")
    proc = cli("run", "summarize", "--file", str(doc), "--length", "short", "--json")
    assert proc.returncode == 0, proc.stderr
    body = json.loads(proc.stdout)
    assert set(body) == {"output", "record"}
    assert body["output"]["language"] == "zh" and body["record"]["skill"] == "summarize"
    proc = cli("run", "summarize", "--length", "short", stdin=LIBRARY)
    assert proc.returncode == 0, proc.stderr
    assert "library" in proc.stdout.lower() and "execution record" in proc.stderr
    proc = cli("run", "summarize", "--text", LIBRARY, "--length", "short", "--json")
    assert json.loads(proc.stdout)["output"]["summary"]


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["run", "summarise", "--text", "x"],
            "skill 'summarise' is not registered by any plugin (did you mean 'summarize'?)",
        ),
        (
            ["run", "summarize", "--text", "x", "--length", "huge"],
            "length: Input should be 'short', 'medium' or 'long'",
        ),
        (
            ["run", "summarize", "--file", "/nonexistent/doc.txt"],
            "/nonexistent/doc.txt: file not found",
        ),
        (["run", "summarize", "--text", "x", "--colour", "red"], "unknown option(s) --colour red"),
        (
            ["run", "summarize", "--text", "x", "--model", "gpt-9"],
            "model 'gpt-9' is not in the model matrix",
        ),
        (
            ["run", "summarize", "--config", "/nonexistent.toml", "--text", "x"],
            "/nonexistent.toml: file not found",
        ),
    ],
)
def test_bad_cli_input_gets_a_clear_error(args: list[str], message: str) -> None:
    proc = cli(*args)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_missing_and_corrupt_model_files(tmp_path: Path) -> None:
    from aios.config.loader import default_config_path

    corrupt = tmp_path / "corrupt.gguf"
    corrupt.write_bytes(b"this is not a model" * 100)
    text = default_config_path().read_text(encoding="utf-8")
    gemma_source = text.split("source = ", 1)[1].split("\n", 1)[0]
    for path, message in [
        (corrupt, "is not a GGUF file"),
        (tmp_path / "gone.gguf", "file not found"),
    ]:
        cfg = tmp_path / "oem.toml"
        cfg.write_text(text.replace(gemma_source, f'{{ path = "{path}" }}'), encoding="utf-8")
        proc = cli("run", "summarize", "--config", str(cfg), "--text", LIBRARY)
        assert proc.returncode != 0
        assert "model 'gemma3-270m'" in proc.stderr and message in proc.stderr
        assert "Traceback" not in proc.stderr
    # The orchestrator stays usable: the next request on a good model succeeds.
    orch = Orchestrator.from_file(cfg)
    try:
        with pytest.raises(Exception, match="file not found"):
            orch.invoke("summarize", {"text": LIBRARY})
        ok = orch.invoke(
            "summarize", {"text": LIBRARY, "length": "short"}, model="smollm2-135m-instruct"
        )
        assert ok.record.status == "ok"
    finally:
        orch.close()
