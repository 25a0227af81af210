"""The model builder contract: make a model file once, ahead of use.

Some weights ship in a form the runtime cannot load (PyTorch checkpoints), or a variant has to
be derived (an INT8 quantization of an ONNX file). A builder, registered through the
``register_model_builders`` hook, writes such files into the model dir; a config model names it
in ``source = { builder = "NAME", file = "..." }``. Building needs extra packages (torch, ...)
that the runtime does not: ``probe`` says whether they are here, and the module must not
import them at top. ``aios models build NAME`` runs a builder.
"""

from __future__ import annotations

import re
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from aios.backend import Availability
from aios.errors import ModelError
from aios.files import replaced_atomically

BUILDER_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class ModelBuilder(ABC):
    """Writes model files into a model dir. One instance per build."""

    name: ClassVar[str]
    description: ClassVar[str]
    # How to get what ``build`` needs, shown when it is missing, e.g. "pip install 'aios[build]'".
    requires: ClassVar[str]
    # The file names ``build`` writes into the model dir.
    outputs: ClassVar[tuple[str, ...]]

    def __init__(self) -> None:
        # What the build measured (verification error, sizes, ...): shown by the CLI.
        self.report: dict[str, Any] = {}

    @abstractmethod
    def probe(self) -> Availability:
        """Whether ``build`` can run here (its build-time packages import), and why not."""

    @abstractmethod
    def build(self, model_dir: Path) -> list[Path]:
        """Write ``outputs`` into ``model_dir`` atomically (see ``atomic_output``); return them.

        Raise ``ModelError`` when the result fails its own verification.
        """


@contextmanager
def atomic_output(target: Path) -> Iterator[Path]:
    """A private temporary path beside ``target``, renamed onto it only if the block succeeds.

    A crash or an error never leaves a half-written file under the real name.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    with replaced_atomically(target) as tmp:
        yield tmp
        if not tmp.is_file():
            raise ModelError(f"builder wrote nothing to {tmp}")


def builder_problems(cls: Any) -> list[str]:
    """Everything wrong with a class handed to ``register`` for the builder contract."""
    if not isinstance(cls, type) or not issubclass(cls, ModelBuilder):
        return [f"{cls!r} is not a subclass of aios.ModelBuilder"]
    problems: list[str] = []
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not BUILDER_NAME.match(name):
        problems.append(f"name {name!r} must match {BUILDER_NAME.pattern}")
    for attr in ("description", "requires"):
        value = getattr(cls, attr, None)
        if not isinstance(value, str) or not value.strip():
            problems.append(f"{attr} must be a non-empty string")
    outputs = getattr(cls, "outputs", None)
    if (
        not isinstance(outputs, tuple)
        or not outputs
        or not all(isinstance(o, str) and FILE_NAME.match(o) for o in outputs)
    ):
        problems.append("outputs must be a non-empty tuple of plain file names")
    if getattr(cls, "__abstractmethods__", None):
        problems.append(
            "implement " + " and ".join(f"{m}()" for m in sorted(cls.__abstractmethods__))
        )
    return problems


@dataclass
class BuildResult:
    name: str
    files: list[Path]
    seconds: float
    built: bool  # False when every output already existed and nothing was rebuilt
    report: dict[str, Any] = field(default_factory=dict)


def run_builder(cls: type[ModelBuilder], model_dir: Path, *, force: bool = False) -> BuildResult:
    """Build ``cls``'s outputs into ``model_dir`` unless they are all there (or ``force``).

    Raises ``ModelError`` naming what is missing when the builder cannot run here.
    """
    wanted = [model_dir / out for out in cls.outputs]
    if not force and all(p.is_file() for p in wanted):
        return BuildResult(cls.name, wanted, 0.0, built=False)
    builder = cls()
    avail = builder.probe()
    if not avail.available:
        raise ModelError(
            f"model builder '{cls.name}' cannot run here: {avail.reason}", hint=cls.requires
        )
    t0 = time.perf_counter()
    try:
        model_dir.mkdir(parents=True, exist_ok=True)
        files = builder.build(model_dir)
    except ModelError:
        raise
    except ImportError as exc:
        raise ModelError(
            f"model builder '{cls.name}' needs a package that cannot be imported: {exc}",
            hint=cls.requires,
        ) from exc
    except Exception as exc:  # a builder bug or a broken build package: name it, no traceback
        raise ModelError(f"model builder '{cls.name}' failed: {type(exc).__name__}: {exc}") from exc
    seconds = time.perf_counter() - t0
    missing = [p.name for p in wanted if not p.is_file()]
    if missing:
        raise ModelError(f"model builder '{cls.name}' did not write {', '.join(missing)}")
    return BuildResult(cls.name, files, seconds, built=True, report=dict(builder.report))
