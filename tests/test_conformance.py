"""The backend conformance suite (aios.testing) over every registered backend, and over a
third-party backend package installed with pip, as its author would run it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from aios import Backend
from aios.backends.default_openai import OpenAIBackend
from aios.config.schema import ModelSpec
from aios.errors import CloudError
from aios.testing import BackendConformance, Sample, config_for

from .cloud_support import llama_server
from .conftest import REPO, pip_install_target

ECHO = REPO / "examples" / "aios-backend-echo"

_servers = ExitStack()  # the cloud sample's server: started on openai's turn, stopped after


@pytest.fixture(scope="module", autouse=True)
def _stop_servers() -> Iterator[None]:
    with _servers:
        yield


def cloud_sample() -> Sample:
    """The openai backend against a real OpenAI-compatible server (llama_cpp.server, SmolLM2)."""
    base, _ = _servers.enter_context(llama_server("cloud-smol"))
    spec = ModelSpec.model_validate(
        {
            "id": "cloud-smol",
            "capabilities": ["text-generation"],
            "parameters_b": 0.135,
            "quantization": "q4_1",
            "format": "api",
            "tier": "cloud",
            "endpoint": "conformance",
            "memory_mb": 0,
            "context_length": 2048,
            "prompt_format": "base",
        }
    )
    endpoint = {"name": "conformance", "base_url": base, "max_retries": 0}
    return Sample(
        spec=spec,
        path=None,
        config=config_for([spec], cloud={"endpoints": [endpoint]}),
        bad_error=CloudError,  # the server refuses a prompt past its context window
        rss_note="a cloud model takes no device memory",
    )


@pytest.mark.model
class TestBuiltinBackends(BackendConformance):
    """Every backend the built-ins and installed plugins register (backends = None)."""

    def make_sample(self, backend_class: type[Backend], workdir: Path) -> Sample | None:
        # The openai backend has no sample of its own: it needs a live server, started here.
        if backend_class is OpenAIBackend:
            return cloud_sample()
        return super().make_sample(backend_class, workdir)


@pytest.fixture(scope="module")
def echo_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example third-party backend, pip-installed into a private target dir."""
    return pip_install_target(tmp_path_factory.mktemp("echo-site"), ECHO)


def run_pytest(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """pytest in a fresh interpreter that sees the installed package (-P: not its source)."""
    env = {**os.environ, "PYTHONPATH": str(site), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [sys.executable, "-P", "-m", "pytest", "-v", "-rs", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def assert_whole_suite_passed(out: str) -> None:
    for test in (
        "test_declares_name_formats_description",
        "test_probe_says_why",
        "test_loads_its_sample",
        "test_generates_or_runs",
        "test_streams_tokens_then_one_done",
        "test_cancel_stops_within_one_token",
        "test_close_is_idempotent_and_refuses_use",
        "test_bad_file_is_a_model_error",
        "test_bad_input_is_a_clear_error",
        "test_footprint_estimate",
    ):
        assert re.search(rf"::{test}\[echo\] PASSED", out), f"{test}[echo] did not pass:\n{out}"
    assert "test_footprint_against_measured_rss[echo] SKIPPED" in out
    assert " failed" not in out and " error" not in out, out


@pytest.mark.slow
def test_third_party_backend_passes_with_its_own_test_file(echo_site: Path, tmp_path: Path) -> None:
    # What the example's author runs in their checkout: its tests/test_conformance.py.
    proc = run_pytest(echo_site, ECHO, "--basetemp", str(tmp_path / "t"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "tests/test_conformance.py::TestEchoConformance::" in proc.stdout
    assert_whole_suite_passed(proc.stdout)


@pytest.mark.slow
def test_third_party_backend_passes_through_the_pytest_option(
    echo_site: Path, tmp_path: Path
) -> None:
    # No test file at all: the plugin aios registers with pytest collects the suite itself.
    proc = run_pytest(echo_site, tmp_path, "--aios-conformance=echo")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "TestInstalledBackends::" in proc.stdout
    assert_whole_suite_passed(proc.stdout)
    # An unknown name fails loudly, naming what is registered.
    proc = run_pytest(echo_site, tmp_path, "--aios-conformance=nope")
    assert proc.returncode == 1, proc.stdout
    assert "backend 'nope' is not registered" in proc.stdout and "echo, llama_cpp" in proc.stdout
