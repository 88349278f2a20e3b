"""The IndexAdmin conformance suite (``datatorag.testing.conformance.index_admin``), run against
every adapter of ``ADAPTERS["index_admin"]`` in ``conftest.py``."""

from datatorag.testing.conformance.index_admin import *  # noqa: F403

# pytest reads marks from the test module: the suite's timeout (also in its __all__), explicitly.
from datatorag.testing.conformance.index_admin import pytestmark  # noqa: F401
