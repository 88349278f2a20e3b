"""In-memory adapters of every port, for fast service-layer tests.

Each one passes its port's conformance suite (``datatorag.testing.conformance``; this repository
runs them as the adapter kind ``memory``), so a test that passes over these fakes exercises the
same contract the embedded and production adapters honour:

* ``MemoryQueue``: visibility timeout, receive counts, redrive to a DLQ after ``max_receives``,
  receipts that change on every receive (only the newest deletes), ``extend``/``release``.
* ``MemoryBlobStore``: atomic puts, streams, metadata, lexicographic listing.
* ``MemoryRegistry``: forward-only ``advance``, the current-version pointer by ``seq``, markers,
  leases, sync runs, ``stalled``.
* ``MemoryVectorIndex``: exact cosine k-NN and a small BM25 over title and text, with the
  tenant and ``SearchFilters`` applied before ranking.
* ``MemoryEmbeddingCache``: vectors by (model, key).
* ``MemoryIndexAdmin``: blue/green builds of ``MemoryVectorIndex`` objects behind aliases.
* ``HashingEmbedder``: deterministic bag-of-words hashing vectors (no model, no download).

State lives in the object: nothing survives it, nothing is shared between instances. The fakes
are for one event loop and any number of tasks (not threads); every call yields to the loop once,
as real I/O would, so concurrent tasks interleave between calls but each call is atomic.
Time-dependent behaviour (visibility timeouts, delays, leases) reads an injectable ``clock``
(``time.monotonic`` by default); a ``ManualClock`` lets a test move time on without sleeping.
"""

from datatorag.testing.memory.blobstore import MemoryBlobStore
from datatorag.testing.memory.clock import Clock, ManualClock
from datatorag.testing.memory.embedder import HashingEmbedder
from datatorag.testing.memory.embedding_cache import MemoryEmbeddingCache
from datatorag.testing.memory.index_admin import MemoryIndexAdmin
from datatorag.testing.memory.queue import MemoryQueue
from datatorag.testing.memory.registry import MemoryRegistry
from datatorag.testing.memory.vector_index import MemoryVectorIndex

__all__ = [
    "Clock",
    "HashingEmbedder",
    "ManualClock",
    "MemoryBlobStore",
    "MemoryEmbeddingCache",
    "MemoryIndexAdmin",
    "MemoryQueue",
    "MemoryRegistry",
    "MemoryVectorIndex",
]
