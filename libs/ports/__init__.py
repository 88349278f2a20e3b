"""Ports: one interface per external system. Embedded and production adapters implement them,
and ``tests/conformance`` holds one suite per port that every adapter must pass."""

from libs.ports.blobstore import BlobInfo, BlobStore
from libs.ports.embedder import Embedder
from libs.ports.queue import Queue, QueueMessage
from libs.ports.registry import Registry, SyncRun
from libs.ports.vector_index import VectorIndex

__all__ = [
    "BlobInfo",
    "BlobStore",
    "Embedder",
    "Queue",
    "QueueMessage",
    "Registry",
    "SyncRun",
    "VectorIndex",
]
