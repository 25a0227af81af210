"""The aios backend conformance suite, run on this package's backend.

`backends` names it as registered through the `aios` entry point, so the suite also checks that
the installed package registers it. The sample model comes from EchoBackend.conformance_sample.
"""

from aios.testing import BackendConformance


class TestEchoConformance(BackendConformance):
    backends = ("echo",)
