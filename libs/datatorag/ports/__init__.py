"""Ports: one interface per external system. Embedded and production adapters implement them,
and ``datatorag.testing.conformance`` holds one suite per port that every adapter must pass."""

from datatorag.ports.blobstore import BlobInfo, BlobStore
from datatorag.ports.embedder import Embedder
from datatorag.ports.generator import (
    ChatMessage,
    Finished,
    Generation,
    GenerationEvent,
    GenerationRequest,
    Generator,
    GeneratorError,
    SourcePassage,
    TextDelta,
    Usage,
)
from datatorag.ports.queue import Queue, QueueMessage
from datatorag.ports.registry import Registry, SyncRun
from datatorag.ports.vector_index import VectorIndex

__all__ = [
    "BlobInfo",
    "BlobStore",
    "ChatMessage",
    "Embedder",
    "Finished",
    "Generation",
    "GenerationEvent",
    "GenerationRequest",
    "Generator",
    "GeneratorError",
    "Queue",
    "QueueMessage",
    "Registry",
    "SourcePassage",
    "SyncRun",
    "TextDelta",
    "Usage",
    "VectorIndex",
]
