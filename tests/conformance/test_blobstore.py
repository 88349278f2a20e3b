"""The BlobStore conformance suite (``datatorag.testing.conformance.blobstore``), run against every
adapter of ``ADAPTERS["blobstore"]`` in ``conftest.py`` (the ``blobstore`` fixture)."""

from datatorag.testing.conformance.blobstore import *  # noqa: F403

# pytest reads marks from the test module: the suite's timeout (also in its __all__), explicitly.
from datatorag.testing.conformance.blobstore import pytestmark  # noqa: F401
