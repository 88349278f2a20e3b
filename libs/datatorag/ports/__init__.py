"""Ports: one interface per external system. Embedded and production adapters implement them,
and ``datatorag.testing.conformance`` holds one suite per port that every adapter must pass."""

from datatorag.ports.blobstore import BlobInfo, BlobStore
from datatorag.ports.embedder import Embedder
from datatorag.ports.embedding_cache import EmbeddingCache
from datatorag.ports.queue import Queue, QueueMessage
from datatorag.ports.registry import Registry, RunTrigger, RunType, SourceRecord, SyncRun
from datatorag.ports.vector_index import IndexAdmin, VectorIndex

__all__ = [
    "BlobInfo",
    "BlobStore",
    "Embedder",
    "EmbeddingCache",
    "IndexAdmin",
    "Queue",
    "QueueMessage",
    "Registry",
    "RunTrigger",
    "RunType",
    "SourceRecord",
    "SyncRun",
    "VectorIndex",
]
