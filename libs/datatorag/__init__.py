"""DatatoRAG: HR documents in, cited answers out.

The public API: settings, the domain types, and the ports every adapter implements. Processes are
put together by ``datatorag.bootstrap`` and started by ``datatorag.entrypoints`` (the
``datatorag`` command); ``datatorag.testing`` holds the conformance suites for new adapters.
"""

from importlib.metadata import PackageNotFoundError, version

from datatorag.config import Mode, Settings
from datatorag.domain.errors import DependencyError, NotFound, PermanentError, TransientError
from datatorag.domain.models import (
    Chunk,
    ChunkRecord,
    DocumentRecord,
    DocumentStatus,
    SearchFilters,
    SearchHit,
)
from datatorag.ports import BlobStore, Embedder, Queue, Registry, VectorIndex

try:
    __version__ = version("datatorag")
except PackageNotFoundError:  # run from a clone without installing
    __version__ = "0+unknown"

__all__ = [
    "BlobStore",
    "Chunk",
    "ChunkRecord",
    "DependencyError",
    "DocumentRecord",
    "DocumentStatus",
    "Embedder",
    "Mode",
    "NotFound",
    "PermanentError",
    "Queue",
    "Registry",
    "SearchFilters",
    "SearchHit",
    "Settings",
    "TransientError",
    "VectorIndex",
    "__version__",
]
