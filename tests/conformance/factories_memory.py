"""Factories for the in-memory adapters (``datatorag.testing.memory``): each test gets fresh,
empty ones, with the same small timeouts as the embedded adapters' factories."""

from __future__ import annotations

from pathlib import Path

import pytest

from datatorag.ports import (
    BlobStore,
    Embedder,
    EmbeddingCache,
    IndexAdmin,
    Queue,
    Registry,
    VectorIndex,
)
from datatorag.testing.memory import (
    HashingEmbedder,
    MemoryBlobStore,
    MemoryEmbeddingCache,
    MemoryIndexAdmin,
    MemoryQueue,
    MemoryRegistry,
    MemoryVectorIndex,
)

VECTOR_DIM = 8  # the conformance suite builds its own small vectors


async def make_queue(request: pytest.FixtureRequest, tmp_path: Path) -> Queue:
    return MemoryQueue("q-memory", visibility_timeout_s=2, max_receives=3)


async def make_blobstore(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    return MemoryBlobStore()


async def make_registry(request: pytest.FixtureRequest, tmp_path: Path) -> Registry:
    return MemoryRegistry()


async def make_vector_index(request: pytest.FixtureRequest, tmp_path: Path) -> VectorIndex:
    index = MemoryVectorIndex(dim=VECTOR_DIM)
    await index.ensure()
    return index


async def make_embedder(request: pytest.FixtureRequest, tmp_path: Path) -> Embedder:
    return HashingEmbedder()  # 384 dimensions, as the suite expects of the product's model


async def make_embedding_cache(request: pytest.FixtureRequest, tmp_path: Path) -> EmbeddingCache:
    return MemoryEmbeddingCache()


async def make_index_admin(request: pytest.FixtureRequest, tmp_path: Path) -> IndexAdmin:
    return MemoryIndexAdmin()
