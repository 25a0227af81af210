"""The suite over installed backends, collected by ``pytest --aios-conformance=NAMES``."""

from aios.testing.suite import BackendConformance


class TestInstalledBackends(BackendConformance):
    """The built-in backends and those of every installed ``aios`` plugin, or the ones named."""
