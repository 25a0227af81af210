from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aios import Orchestrator
from aios.config.loader import load_config

from .doubles import ScriptedBackend, ScriptedPlugin

REPO = Path(__file__).resolve().parent.parent


def run_cli(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """The real `aios` command in a subprocess, logs at warning so stderr holds the messages."""
    full_env = {**os.environ, "AIOS_LOG_LEVEL": "warning", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "aios.cli.main", *args],
        capture_output=True,
        text=True,
        input=stdin,
        env=full_env,
        timeout=timeout,
        check=False,
    )


def pip_install_target(target: Path, *packages: Path) -> Path:
    """pip-install local packages into a private folder (the test venv stays clean)."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            *map(str, packages),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return target


def pytest_configure(config: pytest.Config) -> None:
    # Requests made by tests (in-process and CLI subprocesses) go to a throwaway ledger.
    import tempfile

    os.environ.setdefault("AIOS_LEDGER", str(Path(tempfile.mkdtemp()) / "ledger.sqlite"))


def phone_config(
    backends: str,
    *,
    soc_vendor: str = "generic",
    os_reserve_mb: int = 2048,
    keepalive_reserve_mb: int = 2048,
) -> str:
    """The head every test config shares: the OEM, one 8 GB phone profile and its backends
    (a TOML list, or a ``{placeholder}`` the test fills with ``str.format``)."""
    return (
        'schema_version = 1\n[oem]\nid = "test"\nname = "Test OEM"\n'
        '[device]\nprofile = "phone"\n[[profiles]]\nname = "phone"\nram_mb = 8192\n'
        f'soc_vendor = "{soc_vendor}"\nsoc_model = "test"\nos_reserve_mb = {os_reserve_mb}\n'
        f"keepalive_reserve_mb = {keepalive_reserve_mb}\nbackends = {backends}\n"
    )


SCRIPTED_CONFIG = (
    phone_config('["scripted", "llama_cpp"]', os_reserve_mb=4096, keepalive_reserve_mb=3072)
    + """[[models]]
id = "big"
capabilities = ["text-generation"]
parameters_b = 7
quantization = "q4_k_m"
format = "gguf"
tier = "device"
memory_mb = 4200
context_length = 4096
backends = ["scripted"]
prompt_format = "base"
source = {{ path = "{weights}" }}
[[models]]
id = "small"
capabilities = ["text-generation"]
parameters_b = 0.27
quantization = "q4_k_m"
format = "gguf"
tier = "device"
memory_mb = 400
context_length = 512
backends = ["scripted"]
prompt_format = "base"
source = {{ path = "{weights}" }}
[[models]]
id = "cloud-big"
capabilities = ["text-generation"]
parameters_b = 175
quantization = "fp16"
format = "api"
tier = "cloud"
endpoint = "cloud"
memory_mb = 0
context_length = 32768
prompt_format = "base"
[[cloud.endpoints]]
name = "cloud"
base_url = "http://127.0.0.1:9/v1"
max_retries = 0
[prompt_formats.base]
style = "completion"
template = "{{input_label}}: {{input}}\\n\\n{{answer_label}}:"
[plugins]
autoload = false
"""
)


@pytest.fixture
def scripted_config(tmp_path: Path) -> Path:
    weights = tmp_path / "weights.gguf"
    weights.write_bytes(b"GGUF" + b"\0" * 16)
    cfg = tmp_path / "oem.toml"
    cfg.write_text(textwrap.dedent(SCRIPTED_CONFIG.format(weights=weights)), encoding="utf-8")
    return cfg


@pytest.fixture
def scripted(scripted_config: Path) -> Iterator[Orchestrator]:
    """An orchestrator whose models run on the scripted backend (registered, then removed)."""
    ScriptedBackend.available = True
    ScriptedBackend.loaded = []
    cfg, path = load_config(scripted_config)
    orch = Orchestrator(
        cfg, config_path=path, strict=True, extra_plugins=(("scripted", ScriptedPlugin()),)
    )
    try:
        yield orch
    finally:
        orch.close()
        ScriptedBackend.available = True


@pytest.fixture(scope="session")
def reference() -> Iterator[Orchestrator]:
    """The embedded reference config on the real models, shared across the session."""
    orch = Orchestrator.from_file(None, strict=True)
    try:
        yield orch
    finally:
        orch.close()


@pytest.fixture(scope="session")
def vision_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model dir holding EfficientNet-Lite0 FP32 and INT8 ONNX, built once per session by the
    real builders (`aios models build`); skipped when the build packages are missing."""
    from aios.builders import run_builder
    from aios.plugins.vision_build import BUILDERS

    for cls in BUILDERS:
        skip_unless_buildable(cls)
    where = tmp_path_factory.mktemp("vision-models")
    for cls in BUILDERS:
        run_builder(cls, where)
    return where


def skip_unless_buildable(cls: Any) -> None:
    """Skip the test when the model builder ``cls`` cannot run here (its packages missing)."""
    avail = cls().probe()
    if not avail.available:
        pytest.skip(f"cannot build {cls.name}: {avail.reason} ({cls.requires})")


def build_or_skip(cls: Any, model_dir: Path) -> None:
    """Build ``cls``'s outputs into ``model_dir`` as `aios models build` does (nothing when
    they are there), or skip the test when the builder cannot run here."""
    from aios.builders import run_builder

    skip_unless_buildable(cls)
    run_builder(cls, model_dir)
