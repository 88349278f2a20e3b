"""The Registry conformance suite (``datatorag.testing.conformance.registry``), run against every
adapter of ``ADAPTERS["registry"]`` in ``conftest.py`` (the ``registry`` fixture)."""

from datatorag.testing.conformance.registry import *  # noqa: F403

# pytest reads marks from the test module: the suite's timeout (also in its __all__), explicitly.
from datatorag.testing.conformance.registry import pytestmark  # noqa: F401
