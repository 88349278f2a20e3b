"""The VectorIndex conformance suite (``datatorag.testing.conformance.vector_index``), run
against every adapter of ``ADAPTERS["vector_index"]`` in ``conftest.py`` (the ``vector_index``
fixture)."""

from datatorag.testing.conformance.vector_index import *  # noqa: F403

# pytest reads marks from the test module: the suite's timeout (also in its __all__), explicitly.
from datatorag.testing.conformance.vector_index import pytestmark  # noqa: F401
