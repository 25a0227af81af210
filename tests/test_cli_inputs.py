"""Bad input on the command line: one clear line naming the problem, never a traceback.

Each case came from a sweep of every command with wrong paths, special files, junk files and
out-of-range values; the ones here had printed a traceback, hung, or quietly done the wrong
thing (turned a user's file into a database, let an empty pipe replace --input).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from aios.device.network import forced_offline

from .conftest import run_cli


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    junk = tmp_path / "junk.sqlite"
    junk.write_text("these are my notes, not a database\n", encoding="utf-8")
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    binary = tmp_path / "binary.log"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    labels = tmp_path / "labels.csv"
    rows = [f"question {i}: what is {i} times {i * 7}?,{i % 2},1" for i in range(12)]
    labels.write_text("prompt,device_correct,cloud_correct\n" + "\n".join(rows) + "\n", "utf-8")
    return {
        "labels": str(labels),
        "junk": str(junk),
        "empty": str(empty),
        "binary": str(binary),
        "home": str(tmp_path / "home"),
        "tmp": str(tmp_path),
    }


CASES = [
    (["explain", "summarize", "--model", "nosuch", "--text", "hi"], {}, "model 'nosuch' is not"),
    (["report", "cost", "--ledger", "{junk}"], {}, "junk.sqlite: not a request ledger"),
    (["report", "cost", "--ledger", "{empty}"], {}, "empty.txt: not a request ledger"),
    (["explain", "summarize", "--text", "hi"], {"AIOS_LEDGER": "{junk}"}, "not a request ledger"),
    (["report", "cost", "--log", "{binary}"], {}, "binary.log: not UTF-8 text"),
    (
        ["router", "eval", "--router", "{empty}", "--data", "{labels}"],
        {},
        "empty.txt: not a router",
    ),
    (["serve", "--port", "70000"], {}, "--port: 70000 is outside 0-65535"),
    (["serve", "--socket-mode", "999"], {}, "--socket-mode: '999' is not an octal file mode"),
    (["models", "resident", "--url", "http://[::1"], {"AIOS_TOKEN": "t"}, "is not a URL"),
    (["models", "resident", "--socket", "{junk}"], {"AIOS_TOKEN": "t"}, "is not a socket"),
    (["explain", "summarize", "--file", "/dev/zero"], {}, "/dev/zero: not a regular file"),
    (["config", "validate", "/dev/zero"], {}, "not a regular file"),
    (
        ["explain", "summarize", "--text", "x", "--input", '{"text": "y"}'],
        {},
        "--input's 'text' and --text both give the text",
    ),
    (["explain", "image", "--text", "hi"], {}, "--text: this skill takes no text; give --input"),
    (
        ["explain", "chat", "--text", "x", "--input", '{"messages": []}'],
        {},
        "--input's 'messages' and --text both give the text",
    ),
    (["index", "status", "--user", "../../elsewhere"], {}, "is not a profile name"),
    (["report", "cost", "--since-hours", "-5"], {}, "must be a positive number of hours"),
    (["skills"], {"AIOS_HOME": "{junk}"}, "is not a directory"),
    (["skills", "--profile", "nope"], {}, "profile 'nope' was asked for; the profiles are"),
    (["apps", "add", "app1", "--skills", "summarise"], {}, "did you mean 'summarize'?"),
]


@pytest.mark.parametrize(("args", "env", "message"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_input_is_one_clear_line(
    files: dict[str, str], args: list[str], env: dict[str, str], message: str
) -> None:
    def fill(text: str) -> str:
        for key, value in files.items():
            text = text.replace("{" + key + "}", value)
        return text

    args = [fill(a) for a in args]
    env = {"AIOS_HOME": files["home"], **{k: fill(v) for k, v in env.items()}}
    before = Path(files["junk"]).read_bytes()
    proc = run_cli(*args, env=env, timeout=60)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert Path(files["junk"]).read_bytes() == before  # nothing was written into the user's file
    assert Path(files["empty"]).read_bytes() == b""


def test_a_fifo_is_refused_without_waiting_for_a_writer(files: dict[str, str]) -> None:
    fifo = Path(files["tmp"]) / "pipe"
    os.mkfifo(fifo)
    for args in (["explain", "summarize", "--file", str(fifo)], ["config", "validate", str(fifo)]):
        proc = run_cli(*args, env={"AIOS_HOME": files["home"]}, timeout=60)
        assert proc.returncode != 0 and "pipe: not a regular file" in proc.stderr, proc.stderr


def test_non_utf8_stdin_is_named(files: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "aios.cli.main", "explain", "summarize"],
        input=Path(files["binary"]).read_bytes(),
        capture_output=True,
        env={**os.environ, "AIOS_HOME": files["home"]},
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert b"standard input is not UTF-8 text" in done.stderr and b"Traceback" not in done.stderr


def test_an_empty_pipe_does_not_replace_input(files: dict[str, str]) -> None:
    """Scripts run with stdin from /dev/null or an empty pipe: --input still holds the text."""
    proc = run_cli(
        "explain",
        "summarize",
        "--input",
        '{"text": "hello there"}',
        "--json",
        stdin="",
        env={"AIOS_HOME": files["home"]},
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["status"] == "explained"


def test_explain_takes_the_same_field_options_as_run(files: dict[str, str]) -> None:
    proc = run_cli(
        "explain",
        "summarize",
        "--text",
        "hello there",
        "--length",
        "short",
        "--json",
        env={"AIOS_HOME": files["home"]},
    )
    assert proc.returncode == 0, proc.stderr
    bad = run_cli("explain", "summarize", "--text", "x", "--length", "huge")
    assert bad.returncode == 2 and "length: Input should be" in bad.stderr


def test_router_eval_json_stays_json_when_the_tiers_tie(files: dict[str, str]) -> None:
    data = Path(files["tmp"]) / "tie.csv"
    rows = [f"question number {i} about {i * 7} apples?,1,1" for i in range(12)]
    data.write_text("prompt,device_correct,cloud_correct\n" + "\n".join(rows) + "\n", "utf-8")
    artifact = Path(files["tmp"]) / "r.bin"
    fit = run_cli("router", "fit", "--data", str(data), "--out", str(artifact))
    assert fit.returncode == 0, fit.stderr
    proc = run_cli("router", "eval", "--router", str(artifact), "--data", str(data), "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)  # would fail on a bare NaN
    assert summary["apgr"] is None and summary["device_share_at_95"] == 1.0


@pytest.mark.parametrize(
    ("value", "offline"),
    [("", False), ("0", False), ("false", False), ("No", False), ("off", False)]
    + [("1", True), ("true", True), ("yes", True), ("maybe", True)],
)
def test_aios_offline_spellings(monkeypatch: pytest.MonkeyPatch, value: str, offline: bool) -> None:
    """An explicit no turns it off; anything unclear keeps the data on the device."""
    monkeypatch.setenv("AIOS_OFFLINE", value)
    assert forced_offline() is offline


def test_text_becomes_a_chat_user_turn(files: dict[str, str]) -> None:
    """`--text`, `--file` and a pipe fill a chat's messages as one user turn."""
    env = {"AIOS_HOME": files["home"]}
    note = Path(files["tmp"]) / "question.txt"
    note.write_text("What is 12 times 7?", encoding="utf-8")
    for args, stdin in (
        (["--text", "What is 12 times 7?"], None),
        (["--file", str(note)], None),
        ([], "What is 12 times 7?"),
    ):
        proc = run_cli("explain", "chat", "--json", *args, env=env, timeout=60, stdin=stdin)
        assert proc.returncode == 0, proc.stderr
        record = json.loads(proc.stdout)
        assert record["skill"] == "chat" and record["status"] == "explained"
    # What the command hands the orchestrator: the text as the one user turn.
    from aios.cli.commands import _payload
    from aios.plugins.default_chat import Chat

    orch = SimpleNamespace(skill_class=lambda name: Chat)
    for given in ({"text": "What is 12 times 7?", "file": None}, {"text": None, "file": str(note)}):
        args = SimpleNamespace(skill="chat", input=None, **given)
        _, payload = _payload(orch, args, ["--max-tokens", "9"])
        assert payload == {
            "messages": [{"role": "user", "content": "What is 12 times 7?"}],
            "max_tokens": "9",
        }
