"""Test support for aios plugin authors: the backend conformance suite.

    from aios.testing import BackendConformance

    class TestMyBackend(BackendConformance):
        backends = ("my_backend",)  # as registered through the `aios` entry point

Each backend supplies its sample model through ``Backend.conformance_sample`` (a ``Sample``).
Or, with no test file at all: ``pytest --aios-conformance=my_backend`` (the pytest plugin that
the aios package registers; inert unless that option is given).
"""

import pytest

# The suite's asserts explain themselves under pytest, wherever aios is installed.
pytest.register_assert_rewrite("aios.testing.suite")

from aios.testing.sample import Sample  # noqa: E402
from aios.testing.samples import config_for  # noqa: E402
from aios.testing.suite import BackendConformance  # noqa: E402

__all__ = ["BackendConformance", "Sample", "config_for"]
