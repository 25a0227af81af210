"""Service pieces without a server or a model: credentials, quotas, error mapping, apps file."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from aios.config.schema import AppSpec, OEMConfig, ServiceSettings
from aios.errors import CancelledError, ConfigError, InvalidInputError, UnknownSkillError
from aios.memory.governor import MemoryBudgetError
from aios.scheduler import QueueFullError
from aios.service.auth import (
    AppRegistry,
    append_app,
    check_skill,
    effective_priority,
    hash_token,
    read_apps_file,
)
from aios.service.errors import (
    BadRequestError,
    ForbiddenError,
    RateLimitedError,
    UnauthorizedError,
    body_of,
    headers_of,
    status_of,
)
from aios.service.quotas import Quotas
from aios.skill import Skill
from aios.types import DataClass, Priority

from .conftest import run_cli


def _app(id: str = "a", token: str = "t", **kw: object) -> AppSpec:
    return AppSpec(id=id, token_sha256=hash_token(token), skills=["*"], **kw)  # type: ignore[arg-type]


def test_authenticate() -> None:
    reg = AppRegistry([_app("a", "tok-a"), _app("b", "tok-b")])
    assert reg.authenticate("Bearer tok-b").id == "b"
    assert reg.authenticate("bearer  tok-a ").id == "a"
    for bad in (None, "", "Bearer", "Basic tok-a", "Bearer tok-c"):
        with pytest.raises(UnauthorizedError):
            reg.authenticate(bad)


def test_app_spec_refuses_clear_tokens_and_bad_skills() -> None:
    with pytest.raises(ValueError):
        AppSpec(id="a", token_sha256="my-secret-token", skills=["*"])
    with pytest.raises(ValueError):
        AppSpec(id="a", token_sha256="0" * 64, skills=[])
    with pytest.raises(ValueError):
        AppSpec(id="a", token_sha256="0" * 64, skills=["Not A Skill"])
    with pytest.raises(ValueError):
        ServiceSettings(max_body_bytes=10)


class _Docs(Skill):
    name = "docs"
    data_classes = frozenset({DataClass.documents})


def test_skill_and_data_class_permissions() -> None:
    check_skill(_app(data_classes=["text", "documents"]), _Docs)
    with pytest.raises(ForbiddenError, match="documents"):
        check_skill(_app(data_classes=["text"]), _Docs)
    only = AppSpec(id="o", token_sha256="0" * 64, skills=["summarize"], data_classes=["documents"])
    with pytest.raises(ForbiddenError, match="may not call skill 'docs'"):
        check_skill(only, _Docs)


def test_priority_can_be_lowered_never_raised() -> None:
    fg, bg = _app(priority="foreground"), _app(priority="background")
    assert effective_priority(fg, None) is Priority.foreground
    assert effective_priority(fg, "background") is Priority.background
    assert effective_priority(bg, "foreground") is Priority.background
    with pytest.raises(BadRequestError):
        effective_priority(fg, "urgent")


def test_token_bucket_quota_and_concurrency() -> None:
    now = [0.0]
    q = Quotas(clock=lambda: now[0])
    app = _app(requests_per_minute=2, max_concurrent=5)
    q.admit(app)
    q.admit(app)
    with pytest.raises(RateLimitedError) as exc:
        q.admit(app)
    assert headers_of(exc.value) == {"Retry-After": "30"} and status_of(exc.value) == 429
    now[0] = 30.0  # one token back
    q.admit(app)
    busy = _app("b", requests_per_minute=100, max_concurrent=1)
    q.admit(busy)
    with pytest.raises(RateLimitedError, match="max_concurrent"):
        q.admit(busy)
    q.release(busy)
    q.admit(busy)


def test_error_statuses_and_bodies() -> None:
    assert status_of(InvalidInputError("s", ["x: bad"])) == 422
    assert body_of(InvalidInputError("s", ["x: bad"]))["error"]["problems"] == ["x: bad"]
    assert status_of(UnknownSkillError("nope", hint="did you mean")) == 404
    assert body_of(UnknownSkillError("nope", hint="h"))["error"]["hint"] == "h"
    assert status_of(CancelledError("c")) == 499
    assert status_of(QueueFullError("full")) == 503
    assert headers_of(QueueFullError("full")) == {"Retry-After": "1"}
    assert status_of(MemoryBudgetError("too big")) == 507
    assert status_of(ConfigError("x", ["y"])) == 500


def test_apps_file_merge_config_wins(tmp_path: Path) -> None:
    apps = tmp_path / "apps.toml"
    append_app(apps, _app("shared", "from-file"))
    append_app(apps, _app("fileonly", "file-token"))
    assert stat.S_IMODE(apps.stat().st_mode) == 0o600
    assert "file-token" not in apps.read_text()
    with pytest.raises(ConfigError, match="already exists"):
        append_app(apps, _app("fileonly", "other"))
    from aios.config.loader import load_config

    cfg, path = load_config(None)
    data = cfg.model_dump(mode="json")
    data["service"]["apps_file"] = str(apps)
    data["apps"] = [_app("shared", "from-config").model_dump(mode="json")]
    reg = AppRegistry.load(OEMConfig.model_validate(data), path.parent)
    assert reg.authenticate("Bearer from-config").id == "shared"
    with pytest.raises(UnauthorizedError):
        reg.authenticate("Bearer from-file")
    assert reg.authenticate("Bearer file-token").id == "fileonly"


def test_bad_apps_file_names_every_problem(tmp_path: Path) -> None:
    apps = tmp_path / "apps.toml"
    apps.write_text('[[apps]]\nid = "A B"\ntoken_sha256 = "x"\nskills = ["*"]\n[other]\n')
    with pytest.raises(ConfigError) as exc:
        read_apps_file(apps)
    text = "\n".join(exc.value.problems)
    assert "other: unknown key" in text and "apps[0].id" in text and "apps[0].token_sha256" in text


def test_cli_apps_add_prints_token_once(tmp_path: Path) -> None:
    env = {"AIOS_HOME": str(tmp_path)}
    r = run_cli("apps", "add", "notes", "--skills", "summarize", "chat", env=env)
    assert r.returncode == 0, r.stderr
    token = r.stdout.split("keep it secret): ")[1].strip()
    text = (tmp_path / "apps.toml").read_text()
    assert token not in text and hash_token(token) in text
    (app,) = read_apps_file(tmp_path / "apps.toml")
    assert app.id == "notes" and app.skills == ["summarize", "chat"]
    r = run_cli("apps", "add", "notes", env=env)
    assert r.returncode == 2 and "already exists" in r.stderr
    r = run_cli("apps", "add", "Bad Name", env=env)
    assert r.returncode == 2 and "id" in r.stderr
    r = run_cli("apps", "ls", "--json", env=env)
    assert r.returncode == 0 and "token_sha256" not in r.stdout and token not in r.stdout
    assert json.loads(r.stdout)["apps"][0]["id"] == "notes"


def test_conversation_renders_per_prompt_format() -> None:
    from aios.config.schema import PromptFormat
    from aios.prompt import Prompt, render

    msgs = ({"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"})
    chat = PromptFormat(style="chat", system="Be brief.", template="{input}")
    out = render(Prompt(input="", messages=msgs), chat)
    assert out.messages == ({"role": "system", "content": "Be brief."}, *msgs)
    base = PromptFormat(style="completion", template="{input}")
    out = render(Prompt(input="", messages=msgs), base)
    assert out.text == "User: Hi\nAssistant: Hello\nAssistant:" and out.stop == ("\nUser:",)
