"""The aios hook specifications: the whole plugin API in one place.

Built-in skills, backends and model builders use these same hooks (see
``aios.plugin_manager.DEFAULT_PLUGINS``), so anything a built-in can do, a third-party plugin
can do too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from aios.backend import Backend
    from aios.builders import ModelBuilder
    from aios.skill import Skill

PROJECT = "aios"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_skills(register: Callable[[type[Skill]], None]) -> None:
    """Register skill (or agent) classes: call ``register(MySkill)`` once per class.

    The core validates each class (name, description, input/output models, capabilities,
    sensitivity) and refuses a name that another plugin already registered.
    """


@hookspec
def register_backends(register: Callable[[type[Backend]], None]) -> None:
    """Register inference backend classes: call ``register(MyBackend)`` once per class.

    Backends are chosen by the OEM config's order, never by hook order. A backend must not
    import its runtime (llama_cpp, onnxruntime, ...) at module top: ``probe`` and ``load`` do.
    """


@hookspec
def register_model_builders(register: Callable[[type[ModelBuilder]], None]) -> None:
    """Register model builder classes: call ``register(MyBuilder)`` once per class.

    A builder makes a model file once, ahead of use (``aios models build NAME``): e.g. exports
    PyTorch weights to ONNX, or quantizes an ONNX file. Config models name it in
    ``source = { builder = "NAME", file = "..." }``. The core validates each class and refuses
    a name another plugin already registered. Build-time packages (torch, ...) must not be
    imported at module top: ``probe`` and ``build`` do.
    """
