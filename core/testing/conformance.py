"""The pytest plugin aios registers (entry point ``pytest11: aios_conformance``).

Inert unless asked: it adds one option, ``--aios-conformance=all|NAME[,NAME...]``, which runs
the backend conformance suite over the installed backends (all, or those named) without a test
file. Test files that subclass ``aios.testing.BackendConformance`` need no option. Disable the
plugin with ``-p no:aios_conformance``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest

SUITE_MODULE = "aios.testing.installed"
SUITE_FILE = Path(__file__).with_name("installed.py")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("aios", "aios backend conformance")
    group.addoption(
        "--aios-conformance",
        dest="aios_conformance",
        metavar="NAMES",
        default=None,
        help=(
            "run the aios backend conformance suite over the installed backends: 'all', or "
            "backend names separated by commas (with no paths given, only the suite runs)"
        ),
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("aios_conformance") is None:
        return
    if config.args_source is pytest.Config.ArgsSource.ARGS:
        config.args.append(str(SUITE_FILE))
    else:  # no paths on the command line: the suite alone, not testpaths as well
        config.args = [str(SUITE_FILE)]


class _SuiteModule(pytest.Module):
    """The suite's module, imported by its package name rather than by file path (a file path
    inside an editable install would import it a second time under another name)."""

    def _getobj(self) -> Any:
        return importlib.import_module(SUITE_MODULE)


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makemodule(module_path: Path, parent: Any) -> pytest.Module | None:
    if module_path == SUITE_FILE and parent.config.getoption("aios_conformance") is not None:
        # Outside the rootdir its node id would be empty: name it after the option.
        return _SuiteModule.from_parent(parent, path=module_path, nodeid="aios-conformance")
    return None
