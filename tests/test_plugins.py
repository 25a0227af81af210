"""The plugin manager factory, registration checks and isolation of broken plugins."""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from aios import PluginError, Skill, hookimpl, hookspecs
from aios.plugin_manager import DEFAULT_PLUGINS, build_plugin_manager

from .doubles import ScriptedBackend, ScriptedPlugin


class Text(BaseModel):
    text: str


class Valid(Skill):
    name = "valid_skill"
    description = "A valid skill."
    Input = Text
    Output = Text

    def run(self, inp: Any, ctx: Any) -> Text:
        return inp


def plugin(*classes: Any, hook: str = "register_skills", fail: bool = False) -> Any:
    class P:
        pass

    def impl(register: Any) -> None:
        for c in classes:
            register(c)
        if fail:
            raise RuntimeError("boom")

    impl.__name__ = hook
    setattr(P, hook, staticmethod(hookimpl(impl)))
    return P()


def test_no_plugin_manager_is_built_at_import() -> None:
    src = Path(importlib.import_module("aios.plugin_manager").__file__).read_text()
    tree = ast.parse(src)
    top_level_calls = [
        n
        for n in tree.body
        if isinstance(n, ast.Assign | ast.Expr) and "PluginManager(" in ast.unparse(n)
    ]
    assert top_level_calls == []
    a = build_plugin_manager(autoload=False)
    b = build_plugin_manager(autoload=False)
    assert a.manager is not b.manager


def test_builtins_register_through_the_public_hooks() -> None:
    ps = build_plugin_manager(autoload=False, strict=True)
    assert {"summarize", "generate"} <= set(ps.skills)
    assert {"llama_cpp", "onnxruntime", "qnn", "neuropilot"} <= set(ps.backends)
    for mod in DEFAULT_PLUGINS:
        module = importlib.import_module(mod)
        assert any(hasattr(module, h) for h in ("register_skills", "register_backends")), mod
    assert ps.owners[("skill", "summarize")] == "aios.plugins.default_summarize"


def test_register_backends_hook_accepts_a_third_party_backend() -> None:
    ps = build_plugin_manager(autoload=False, strict=True, extra=[("scripted", ScriptedPlugin())])
    assert ps.backends["scripted"] is ScriptedBackend
    assert ps.owners[("backend", "scripted")] == "scripted"


def test_register_skills_hook_accepts_a_third_party_skill() -> None:
    ps = build_plugin_manager(autoload=False, strict=True, extra=[("mine", plugin(Valid))])
    assert ps.skills["valid_skill"] is Valid


def test_duplicate_names_are_refused_loudly() -> None:
    class Dup(Valid):
        name = "summarize"

    with pytest.raises(
        PluginError,
        match="skill name 'summarize' is already registered by plugin 'aios.plugins.default_summarize'",
    ):
        build_plugin_manager(autoload=False, strict=True, extra=[("dup", plugin(Dup))])
    ps = build_plugin_manager(autoload=False, extra=[("dup", plugin(Dup))])
    assert ps.skills["summarize"].__module__ == "aios.plugins.default_summarize"
    assert [(f.plugin, f.stage) for f in ps.failures] == [("dup", "registration")]


@pytest.mark.parametrize(
    "bad, message",
    [
        (type("NoBase", (), {}), "is not a subclass of aios.Skill"),
        (type("BadName", (Valid,), {"name": "Bad Name"}), "name 'Bad Name' must match"),
        (type("NoDesc", (Valid,), {"description": ""}), "description must be a non-empty string"),
        (
            type("BadInput", (Valid,), {"Input": dict}),
            "Input must be a pydantic BaseModel subclass",
        ),
        (
            type("BadField", (Valid,), {"text_field": "body"}),
            "text_field 'body' is not a field of Input",
        ),
        (
            type(
                "NoRun",
                (Skill,),
                {"name": "norun", "description": "d", "Input": Text, "Output": Text},
            ),
            "implement run\\(\\) or stream\\(\\)",
        ),
    ],
)
def test_invalid_skills_are_refused_with_the_reason(bad: Any, message: str) -> None:
    with pytest.raises(PluginError, match=message):
        build_plugin_manager(autoload=False, strict=True, extra=[("bad", plugin(bad))])


def test_invalid_backend_is_refused() -> None:
    class NoFormats(ScriptedBackend):
        name = "noformats"
        formats = frozenset()

    with pytest.raises(PluginError, match="formats must be a non-empty set"):
        build_plugin_manager(
            autoload=False, strict=True, extra=[("b", plugin(NoFormats, hook="register_backends"))]
        )


def test_a_failing_plugin_is_rolled_back_and_the_rest_work() -> None:
    class Partial(Valid):
        name = "partial"

    ps = build_plugin_manager(
        autoload=False, extra=[("broken", plugin(Partial, fail=True)), ("good", plugin(Valid))]
    )
    assert "partial" not in ps.skills, "a failing plugin's partial registrations are rolled back"
    assert "valid_skill" in ps.skills and "summarize" in ps.skills
    assert ps.failures[0].plugin == "broken" and "RuntimeError: boom" in ps.failures[0].error
    with pytest.raises(
        PluginError, match="plugin 'broken' failed during registration: RuntimeError: boom"
    ):
        build_plugin_manager(
            autoload=False, strict=True, extra=[("broken", plugin(Partial, fail=True))]
        )


def test_builtins_can_be_blocked() -> None:
    ps = build_plugin_manager(autoload=False, block=["aios.plugins.default_generate"])
    assert "generate" not in ps.skills and "summarize" in ps.skills


def test_hook_tracing_goes_to_structlog(monkeypatch: pytest.MonkeyPatch) -> None:
    import structlog

    monkeypatch.setenv("AIOS_TRACE_PLUGINS", "1")
    with structlog.testing.capture_logs() as logs:
        build_plugin_manager(autoload=False, strict=True)
    assert any(e["event"] == "hook.call" and e["hook"] == "register_skills" for e in logs)


def test_every_hook_has_a_test() -> None:
    hooks = [n for n in vars(hookspecs) if n.startswith("register_")]
    assert hooks, "no hooks found"
    tests = "\n".join(p.read_text() for p in Path(__file__).parent.glob("test_*.py"))
    for hook in hooks:
        assert f"def test_{hook}_hook" in tests, f"hook {hook} has no dedicated test"


def test_backends_do_not_import_their_runtime_at_module_top() -> None:
    for mod in [m for m in DEFAULT_PLUGINS if ".backends." in m]:
        tree = ast.parse(Path(importlib.import_module(mod).__file__).read_text())
        top = [ast.unparse(n) for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
        heavy = [
            t
            for t in top
            if any(r in t for r in ("llama_cpp", "onnxruntime", "ai_edge_litert"))
            and "aios.backends" not in t
        ]
        assert heavy == [], f"{mod} imports its runtime at module top: {heavy}"


def test_importing_aios_does_not_import_runtimes() -> None:
    import subprocess

    code = "import aios, aios.cli.main, sys; print(sorted(m for m in sys.modules if m in ('llama_cpp','onnxruntime')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
