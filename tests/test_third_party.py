"""Real pip installs of the example plugin packages, discovered through the `aios` entry points."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from .conftest import REPO, pip_install_target, run_cli


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both example packages pip-installed into a private target dir (the env stays clean)."""
    return pip_install_target(
        tmp_path_factory.mktemp("site"),
        REPO / "examples/aios-skill-hello",
        REPO / "examples/aios-skill-broken",
    )


def cli(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env={"PYTHONPATH": str(site)}, timeout=300)


def test_installed_skill_is_discovered_and_runnable(site: Path) -> None:
    proc = cli(site, "skills", "--json")
    assert proc.returncode == 0, proc.stderr
    skills = {s["name"]: s for s in json.loads(proc.stdout)["skills"]}
    assert skills["hello"]["plugin"] == "hello"
    assert skills["hello"]["input_schema"]["properties"]["name"]["type"] == "string"
    proc = cli(site, "run", "hello", "--text", "Ada", "--language", "zh", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["output"] == {"greeting": "你好，Ada！"}
    assert out["record"]["skill"] == "hello" and out["record"]["status"] == "ok"


@pytest.mark.model
def test_third_party_skill_runs_on_the_real_model(site: Path) -> None:
    article = "The city council approved a new public library downtown. It will open in 2027."
    proc = cli(site, "run", "headline", "--text", article, "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["output"]["headline"]
    assert out["record"]["model"] == "gemma3-270m" and out["record"]["tokens_out"] > 0


def test_broken_plugins_are_logged_by_name_and_the_rest_works(site: Path) -> None:
    proc = cli(site, "skills", "--json")
    assert proc.returncode == 0
    body = json.loads(proc.stdout)
    failed = {f["plugin"]: f for f in body["plugin_failures"]}
    assert set(failed) == {"broken_import", "broken_register", "duplicate_name"}
    assert "aios_dependency_that_does_not_exist" in failed["broken_import"]["error"]
    assert "plugin bug while registering" in failed["broken_register"]["error"]
    assert (
        "already registered by plugin 'aios.plugins.default_summarize'"
        in failed["duplicate_name"]["error"]
    )
    names = {s["name"] for s in body["skills"]}
    assert {"hello", "summarize", "generate"} <= names
    assert "half_registered" not in names  # rolled back with its failing plugin
    for name in failed:
        assert name in proc.stderr  # logged with the plugin's name


def test_strict_mode_fails_on_a_broken_plugin(site: Path) -> None:
    proc = cli(site, "skills", "--strict-plugins")
    assert proc.returncode != 0
    assert "plugin 'broken_import' failed during import" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_allowlist_and_blocklist_from_config(site: Path, tmp_path: Path) -> None:
    from aios.config.loader import default_config_path

    text = default_config_path().read_text(encoding="utf-8")
    cfg = tmp_path / "allow.toml"
    cfg.write_text(text + '\n[plugins]\nallow = ["hello"]\n', encoding="utf-8")
    proc = cli(site, "skills", "--json", "--config", str(cfg), "--strict-plugins")
    assert proc.returncode == 0, proc.stderr
    assert "hello" in {s["name"] for s in json.loads(proc.stdout)["skills"]}
    cfg.write_text(
        text
        + '\n[plugins]\nblock = ["hello", "broken_import", "broken_register", "duplicate_name"]\n',
        encoding="utf-8",
    )
    proc = cli(site, "skills", "--json", "--config", str(cfg), "--strict-plugins")
    assert proc.returncode == 0, proc.stderr
    assert "hello" not in {s["name"] for s in json.loads(proc.stdout)["skills"]}
