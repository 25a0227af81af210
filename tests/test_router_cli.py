"""`aios router fit|eval` and the fitted router inside the routing policy."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from aios import Orchestrator
from aios.config.loader import load_config

from .conftest import REPO, SCRIPTED_CONFIG, run_cli
from .doubles import ScriptedPlugin

DATA = REPO.parent / "shared" / "data" / "routellm"
GSM8K = DATA / "gsm8k_responses.csv"
pytestmark = pytest.mark.skipif(not GSM8K.is_file(), reason=f"{GSM8K} not present")

_SCRIPTED = (("scripted", ScriptedPlugin()),)
MAP = ["--device-col", "mistralai/Mixtral-8x7B-Instruct-v0.1", "--cloud-col", "gpt-4-1106-preview"]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, timeout=300)


def split(tmp_path: Path) -> tuple[Path, Path]:
    with GSM8K.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    fields = ["prompt", "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"]
    paths = []
    for name, part in (("train", rows[::2]), ("test", rows[1::2])):
        path = tmp_path / f"{name}.csv"
        with path.open("w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            w.writeheader()
            w.writerows(part)
        paths.append(path)
    return paths[0], paths[1]


def test_fit_then_eval_on_held_out_prompts(tmp_path: Path) -> None:
    train, test = split(tmp_path)
    artifact = tmp_path / "router.bin"
    proc = cli(
        "router",
        "fit",
        "--data",
        str(train),
        "--out",
        str(artifact),
        *MAP,
        "--exclude",
        str(DATA / "gsm8k_contaminated_prompts.jsonl"),
    )
    assert proc.returncode == 0, proc.stderr
    assert artifact.is_file()
    assert "cross-validated: penalty" in proc.stdout and "word-bag" in proc.stdout
    proc = cli("router", "eval", "--router", str(artifact), "--data", str(test), *MAP, "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    for key in ("device_share_at_95", "device_share_at_100", "apgr", "decision_ms_p99", "random"):
        assert key in summary
    assert summary["device_share_at_95"] > summary["random"]["device_share_at_95"] + 0.1
    assert summary["apgr"] > summary["random"]["apgr"]
    assert summary["decision_ms_p99"] < 50  # generous: a loaded CI box; bench/ measures it
    readable = cli("router", "eval", "--router", str(artifact), "--data", str(test), *MAP)
    assert "device_share_at_95" in readable.stdout and "decision p99" in readable.stdout
    # The operating point an OEM copies into routing.difficulty_threshold: with percentile
    # scores it sits near the share it keeps on device (these held-out prompts resemble the
    # labeled ones).
    t95 = summary["threshold_at_95"]
    assert t95 is not None and abs(t95 - summary["device_share_at_95"]) < 0.1
    assert f"routing.difficulty_threshold = {t95:.4f} keeps" in readable.stdout
    assert all("threshold" in point for point in summary["curve"])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "/nonexistent.csv"], "/nonexistent.csv: file not found"),
        (["--data", "{gsm}", "--device-col", "nope"], "nope"),
        (["--data", "{tmp}"], "is a directory, not a file"),
        (["--data", "{tmp}/empty.csv"], "empty.csv: empty file"),
        (["--data", "{tmp}/header.csv"], "header.csv: no labeled rows"),
        (["--data", "{tmp}/gbk.csv"], "gbk.csv: not UTF-8 text"),
        (
            ["--data", "{gsm}", *MAP, "--exclude", "{tmp}/header.csv"],
            "header.csv: line 1: not JSON",
        ),
        (["--data", "{gsm}", *MAP, "--out", "{tmp}/no/such/dir/r.bin"], "r.bin: cannot write"),
        (["--data", "{gsm}", *MAP, "--out", "{tmp}"], "is a directory; --out names the file"),
    ],
)
def test_fit_errors_are_clear(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "header.csv").write_text("prompt,device_correct,cloud_correct\n")
    (tmp_path / "gbk.csv").write_bytes(
        "prompt,device_correct,cloud_correct\n你好,1,0\n".encode("gbk")
    )
    args = [a.replace("{gsm}", str(GSM8K)).replace("{tmp}", str(tmp_path)) for a in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "r.bin")]
    proc = cli("router", "fit", *args)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "r.bin").exists()


def test_eval_rejects_a_file_that_is_not_a_router(tmp_path: Path) -> None:
    bogus = tmp_path / "router.bin"
    bogus.write_bytes(b"not a router")
    proc = cli("router", "eval", "--router", str(bogus), "--data", str(GSM8K), *MAP)
    assert proc.returncode != 0 and "not a router artifact" in proc.stderr


def test_the_policy_uses_the_fitted_router(tmp_path: Path) -> None:
    from aios.routing.difficulty import DifficultyRouter, load_labeled_csv

    data = load_labeled_csv(GSM8K, device_col=MAP[1], cloud_col=MAP[3])
    router = DifficultyRouter.fit(data.prompts, data.device_correct, data.cloud_correct)
    artifact = tmp_path / "router.bin"
    router.save(artifact)
    cfg, path = load_config(_router_config(tmp_path, artifact))
    orch = Orchestrator(cfg, config_path=path, strict=True, extra_plugins=_SCRIPTED)
    try:
        scores = {p: router.score(p) for p in data.prompts[:200]}
        hard = max(scores, key=scores.__getitem__)
        easy = min(scores, key=scores.__getitem__)
        hard_rec = orch.explain("generate", {"prompt": hard})
        easy_rec = orch.explain("generate", {"prompt": easy})
        # A chat is ranked by its latest user turn, whatever came before it.
        chat = [
            {"role": "system", "content": "You are a careful math tutor."},
            {"role": "user", "content": easy},
            {"role": "assistant", "content": "Done. Anything else?"},
            {"role": "user", "content": hard},
        ]
        chat_hard = orch.explain("chat", {"messages": chat})
        chat_easy = orch.explain(
            "chat", {"messages": [*chat[:-1], {"role": "user", "content": easy}]}
        )
    finally:
        orch.close()
    assert hard_rec.tier.value == "cloud" and easy_rec.tier.value == "device"
    assert any(d.reason.startswith("difficulty") and ">=" in d.reason for d in hard_rec.reasons)
    assert any(d.reason.startswith("difficulty") and "<" in d.reason for d in easy_rec.reasons)
    assert chat_hard.tier.value == "cloud" and chat_easy.tier.value == "device"
    assert f"difficulty {scores[hard]:.2f} >=" in " ".join(d.reason for d in chat_hard.reasons)


def _router_config(tmp_path: Path, artifact: Path) -> Path:
    weights = tmp_path / "weights.gguf"
    weights.write_bytes(b"GGUF" + b"\0" * 16)
    cfg_path = tmp_path / "oem.toml"
    cfg_path.write_text(
        SCRIPTED_CONFIG.format(weights=weights)
        + f'\n[routing]\ndifficulty_router = "{artifact.name}"\ndifficulty_threshold = 0.5\n',
        encoding="utf-8",
    )
    return cfg_path


def test_config_validate_reports_a_junk_router_artifact(tmp_path: Path) -> None:
    artifact = tmp_path / "router.bin"
    artifact.write_bytes(b"not a router")
    proc = run_cli("config", "validate", str(_router_config(tmp_path, artifact)), "--json")
    assert proc.returncode != 0
    problems = next(iter(json.loads(proc.stdout)["files"].values()))
    assert any(
        p.startswith("routing.difficulty_router:") and "not a router artifact" in p
        for p in problems
    ), problems


def _small_router_service(tmp_path: Path) -> tuple[Orchestrator, Path, list[str]]:
    """An orchestrator whose config names a router fitted on 200 GSM8K prompts."""
    from aios.routing.difficulty import DifficultyRouter, load_labeled_csv

    data = load_labeled_csv(GSM8K, device_col=MAP[1], cloud_col=MAP[3])
    artifact = tmp_path / "router.bin"
    DifficultyRouter.fit(
        data.prompts[:200], data.device_correct[:200], data.cloud_correct[:200]
    ).save(artifact)
    cfg, path = load_config(_router_config(tmp_path, artifact))
    orch = Orchestrator(cfg, config_path=path, strict=True, extra_plugins=_SCRIPTED)
    return orch, artifact, data.prompts


def test_a_router_broken_after_start_degrades_to_prefer_local(tmp_path: Path) -> None:
    """The router only ranks requests: losing it must not fail them, and the record says so."""
    orch, artifact, prompts = _small_router_service(tmp_path)
    artifact.write_bytes(b"replaced by junk after the config was checked")
    try:
        records = [orch.explain("generate", {"prompt": p}) for p in prompts[:3]]
    finally:
        orch.close()
    for rec in records:
        assert rec.tier.value == "device"
        tier = [d.reason for d in rec.reasons if d.stage == "tier"]
        assert tier and "difficulty router unavailable" in tier[0] and "ValueError" in tier[0]


def test_a_skill_whose_routing_text_fails_is_routed_without_a_score(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plugin's broken ``routing_text`` is its own bug: the request still routes, as if no
    router were configured, and the record names the problem; a skill with nothing to rank
    (indexing a folder) gets no score at all."""
    orch, artifact, prompts = _small_router_service(tmp_path)
    try:
        assert orch.skill_class("index").routing_text(SimpleNamespace(path="/sdcard")) is None
        chat = orch.skill_class("chat")
        monkeypatch.setattr(chat, "routing_text", classmethod(lambda cls, inp: 42))
        rec = orch.explain("chat", {"messages": [{"role": "user", "content": prompts[0]}]})
    finally:
        orch.close()
    tier = [d.reason for d in rec.reasons if d.stage == "tier"]
    assert rec.tier.value == "device"
    assert tier and "chat.routing_text gave int, not str" in tier[0], tier
