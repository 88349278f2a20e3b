"""Ports: one interface per external system. Embedded and production adapters implement them,
and ``datatorag.testing.conformance`` holds one suite per port that every adapter must pass."""

from datatorag.ports.blobstore import BlobInfo, BlobStore
from datatorag.ports.embedder import Embedder
from datatorag.ports.embedding_cache import EmbeddingCache
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
from datatorag.ports.registry import (
    ApiKeyRecord,
    Registry,
    RunTrigger,
    RunType,
    SourceRecord,
    SyncRun,
)
from datatorag.ports.reranker import Reranker
from datatorag.ports.vector_index import IndexAdmin, VectorIndex

__all__ = [
    "ApiKeyRecord",
    "BlobInfo",
    "BlobStore",
    "ChatMessage",
    "Embedder",
    "EmbeddingCache",
    "Finished",
    "Generation",
    "GenerationEvent",
    "GenerationRequest",
    "Generator",
    "GeneratorError",
    "IndexAdmin",
    "Queue",
    "QueueMessage",
    "Registry",
    "Reranker",
    "RunTrigger",
    "RunType",
    "SourcePassage",
    "SourceRecord",
    "SyncRun",
    "TextDelta",
    "Usage",
    "VectorIndex",
]
