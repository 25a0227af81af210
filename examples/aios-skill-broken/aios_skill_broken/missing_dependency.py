"""Fails at import: it needs a package that is not installed."""

import aios_dependency_that_does_not_exist  # noqa: F401
