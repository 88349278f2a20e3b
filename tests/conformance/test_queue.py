"""The Queue conformance suite (``datatorag.testing.conformance.queue``), run against every
adapter of ``ADAPTERS["queue"]`` in ``conftest.py`` (the ``queue`` fixture)."""

from datatorag.testing.conformance.queue import *  # noqa: F403

# pytest reads marks from the test module: the suite's timeout (also in its __all__), explicitly.
from datatorag.testing.conformance.queue import pytestmark  # noqa: F401
