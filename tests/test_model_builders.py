"""Model builders: the `register_model_builders` hook, `aios models build`, builder sources."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from aios import Availability, ModelBuilder, ModelError, PluginError, hookimpl
from aios.builders import atomic_output, run_builder
from aios.config import load_config
from aios.config.checks import check_config
from aios.config.schema import ModelSource
from aios.plugin_manager import build_plugin_manager
from aios.sources import source_problem

from .conftest import REPO, run_cli

TINY_PLUGIN = """
from pathlib import Path

from aios import Availability, ModelBuilder, hookimpl
from aios.builders import atomic_output


class TinyLinear(ModelBuilder):
    name = "tiny-linear"
    description = "A two-by-two linear layer with ReLU, as ONNX."
    requires = "pip install onnx"
    outputs = ("tiny-linear.onnx",)

    def probe(self):
        return Availability(True, "onnx is installed")

    def build(self, model_dir):
        from aios.testing.tiny_onnx import linear_relu

        target = model_dir / "tiny-linear.onnx"
        with atomic_output(target) as tmp:
            linear_relu(tmp)
        self.report["nodes"] = 3
        return [target]


@hookimpl
def register_model_builders(register):
    register(TinyLinear)
"""

BROKEN_PLUGIN = """
from aios import ModelBuilder, hookimpl


class NoOutputs(ModelBuilder):
    name = "no-outputs"
    description = "Declares nothing it writes."
    requires = "nothing"
    outputs = ()

    def probe(self):
        raise NotImplementedError

    def build(self, model_dir):
        return []


@hookimpl
def register_model_builders(register):
    register(NoOutputs)
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two third-party plugins discoverable through the `aios` entry-point group."""
    site = tmp_path_factory.mktemp("site")
    for module, source in (("aios_tiny_builder", TINY_PLUGIN), ("aios_bad_builder", BROKEN_PLUGIN)):
        (site / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        meta = site / f"{module}-0.1.dist-info"  # the name part may not contain "-"
        meta.mkdir()
        (meta / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 0.1\n",
            encoding="utf-8",
        )
        name = "tiny" if "tiny" in module else "bad_builder"
        (meta / "entry_points.txt").write_text(f"[aios]\n{name} = {module}\n", encoding="utf-8")
    return site


def cli(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env={"PYTHONPATH": str(site)})


class Tiny(ModelBuilder):
    name = "tiny"
    description = "Writes one small file."
    requires = "nothing"
    outputs = ("tiny.bin",)

    def probe(self) -> Availability:
        return Availability(True, "always")

    def build(self, model_dir: Path) -> list[Path]:
        with atomic_output(model_dir / "tiny.bin") as tmp:
            tmp.write_bytes(b"tiny")
        return [model_dir / "tiny.bin"]


def plugin(*classes: Any, fail: bool = False) -> Any:
    class P:
        @staticmethod
        @hookimpl
        def register_model_builders(register: Any) -> None:
            for c in classes:
                register(c)
            if fail:
                raise RuntimeError("boom")

    return P()


def test_register_model_builders_hook_accepts_a_third_party_builder(tmp_path: Path) -> None:
    ps = build_plugin_manager(autoload=False, strict=True, extra=[("mine", plugin(Tiny))])
    assert ps.builders["tiny"] is Tiny and ps.owners[("builder", "tiny")] == "mine"
    assert {"efficientnet-lite0", "efficientnet-lite0-int8"} <= set(ps.builders)
    result = run_builder(Tiny, tmp_path / "models")
    assert result.built and (tmp_path / "models/tiny.bin").read_bytes() == b"tiny"
    assert [p.name for p in (tmp_path / "models").iterdir()] == ["tiny.bin"]  # no temp left
    assert not run_builder(Tiny, tmp_path / "models").built  # already there
    assert run_builder(Tiny, tmp_path / "models", force=True).built


@pytest.mark.parametrize(
    "bad, message",
    [
        (type("NotABuilder", (), {}), "is not a subclass of aios.ModelBuilder"),
        (type("BadName", (Tiny,), {"name": "Bad Name"}), "name 'Bad Name' must match"),
        (type("NoOutputs", (Tiny,), {"outputs": ()}), "outputs must be a non-empty tuple"),
        (type("PathOutput", (Tiny,), {"outputs": ("../x.onnx",)}), "plain file names"),
        (type("NoHint", (Tiny,), {"requires": ""}), "requires must be a non-empty string"),
    ],
)
def test_invalid_builders_are_refused_with_the_reason(bad: Any, message: str) -> None:
    with pytest.raises(PluginError, match=message):
        build_plugin_manager(autoload=False, strict=True, extra=[("bad", plugin(bad))])


def test_duplicate_and_failing_builder_plugins(tmp_path: Path) -> None:
    class Dup(Tiny):
        name = "efficientnet-lite0"

    with pytest.raises(
        PluginError,
        match="builder name 'efficientnet-lite0' is already registered by plugin "
        "'aios.plugins.default_vision'",
    ):
        build_plugin_manager(autoload=False, strict=True, extra=[("dup", plugin(Dup))])
    ps = build_plugin_manager(autoload=False, extra=[("broken", plugin(Tiny, fail=True))])
    assert "tiny" not in ps.builders, "a failing plugin's builders are rolled back"
    assert ps.failures[0].plugin == "broken" and "RuntimeError: boom" in ps.failures[0].error


def test_models_build_lists_and_runs_a_third_party_builder(site: Path, tmp_path: Path) -> None:
    where = tmp_path / "models"
    proc = cli(site, "models", "build", "--list", "--json", "--model-dir", str(where))
    assert proc.returncode == 0, proc.stderr
    body = json.loads(proc.stdout)
    rows = {r["name"]: r for r in body["builders"]}
    assert rows["tiny-linear"]["plugin"] == "tiny" and rows["tiny-linear"]["available"]
    assert rows["tiny-linear"]["built"] is False and rows["tiny-linear"]["outputs"] == [
        "tiny-linear.onnx"
    ]
    assert {"efficientnet-lite0", "efficientnet-lite0-int8"} <= set(rows)
    # The broken plugin is skipped (its builder declares no outputs) and reported by name.
    assert "no-outputs" not in rows
    [failure] = body["plugin_failures"]
    assert failure["plugin"] == "bad_builder" and "outputs must be" in failure["error"]

    proc = cli(site, "models", "build", "tiny-linear", "--model-dir", str(where))
    assert proc.returncode == 0, proc.stderr
    assert "tiny-linear: built in" in proc.stdout and (where / "tiny-linear.onnx").is_file()
    proc = cli(site, "models", "build", "--list", "--model-dir", str(where))
    assert "tiny-linear" in proc.stdout and "not built" not in proc.stdout.split("tiny-linear")[1]

    strict = cli(site, "models", "build", "--list", "--strict-plugins", "--model-dir", str(where))
    assert strict.returncode != 0
    assert "plugin 'bad_builder' failed during registration" in strict.stderr
    assert "Traceback" not in strict.stderr


def test_unknown_builder_name_is_a_clean_error() -> None:
    proc = run_cli("models", "build", "no-such-builder")
    assert proc.returncode == 1
    assert "no plugin registers model builder(s) 'no-such-builder'" in proc.stderr
    assert "efficientnet-lite0" in proc.stderr and "Traceback" not in proc.stderr


def test_building_without_torch_names_the_pip_command(tmp_path: Path) -> None:
    # torch blocked in a fresh interpreter (sys.modules[name] = None makes it unimportable).
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from aios.cli.main import main\n"
        f"sys.exit(main(['models', 'build', 'efficientnet-lite0', '--model-dir', {str(tmp_path)!r}]))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 1, proc.stderr
    assert "model builder 'efficientnet-lite0' cannot run here: torch" in proc.stderr
    assert "not installed" in proc.stderr
    assert "pip install 'aios[build]' torch==2.13.0" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not list(tmp_path.iterdir()), "nothing half-built is left behind"


def test_builder_sources_are_validated_and_say_how_to_build(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exactly one of"):
        ModelSource(path="a.onnx", builder="x", file="a.onnx")
    with pytest.raises(ValueError, match="`builder` needs `file`"):
        ModelSource(builder="x")
    src = ModelSource(builder="efficientnet-lite0", file="efficientnet-lite0.onnx")
    ps = build_plugin_manager(autoload=False, strict=True)
    assert source_problem(src, tmp_path, tmp_path, ps.builders) == (
        "not built yet: run `aios models build efficientnet-lite0` (needs "
        + ps.builders["efficientnet-lite0"].requires
        + ")"
    )
    (tmp_path / "efficientnet-lite0.onnx").write_bytes(b"built")
    assert source_problem(src, tmp_path, tmp_path, ps.builders) is None

    text = (REPO / "oem_configs/qualcomm_flagship.toml").read_text(encoding="utf-8")
    bad = tmp_path / "oem.toml"
    bad.write_text(text.replace('builder = "efficientnet-lite0-int8"', 'builder = "nope"'))
    cfg, path = load_config(bad)
    problems = check_config(
        cfg, backends=ps.backends, skills=ps.skills, base_dir=path.parent, builders=ps.builders
    )
    assert any(
        p.endswith(
            ".source.builder: no plugin registers model builder 'nope' "
            "(registered: efficientnet-lite0, efficientnet-lite0-int8)"
        )
        for p in problems
    ), problems


def test_atomic_output_leaves_nothing_when_the_build_fails(tmp_path: Path) -> None:
    target = tmp_path / "model.onnx"
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("export crashed")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ModelError, match="wrote nothing"), atomic_output(target):
        pass
