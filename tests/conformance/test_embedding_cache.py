"""The EmbeddingCache conformance suite (``datatorag.testing.conformance.embedding_cache``), run
against every adapter of ``ADAPTERS["embedding_cache"]`` in ``conftest.py``."""

from datatorag.testing.conformance.embedding_cache import *  # noqa: F403

# pytest reads marks from the test module: the suite's timeout (also in its __all__), explicitly.
from datatorag.testing.conformance.embedding_cache import pytestmark  # noqa: F401
