"""Factories for the embedded adapters (SQLite, local directory, LanceDB) used by the conformance
fixtures. Each adapter gets its own files under the test's ``tmp_path``."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from datatorag.adapters.embedded.local_blobstore import LocalBlobStore
from datatorag.adapters.embedded.sqlite_embedding_cache import SqliteEmbeddingCache
from datatorag.adapters.embedded.sqlite_queue import SqliteQueue
from datatorag.adapters.embedded.sqlite_registry import SqliteRegistry
from datatorag.ports import BlobStore, EmbeddingCache, IndexAdmin, Queue, Registry, VectorIndex

VECTOR_DIM = 8  # the conformance suite builds its own small vectors


async def make_queue(request: pytest.FixtureRequest, tmp_path: Path) -> Queue:
    return SqliteQueue(
        tmp_path / "queues.db",
        name=f"q-{uuid.uuid4().hex[:12]}",
        visibility_timeout_s=2,
        max_receives=3,
        poll_interval_s=0.05,
    )


async def make_blobstore(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    return LocalBlobStore(tmp_path / "blobs")


async def make_registry(request: pytest.FixtureRequest, tmp_path: Path) -> Registry:
    return SqliteRegistry(tmp_path / "registry.db")


async def make_vector_index(request: pytest.FixtureRequest, tmp_path: Path) -> VectorIndex:
    from datatorag.adapters.embedded.lancedb_index import LanceDbIndex  # heavy import, only here

    index = LanceDbIndex(tmp_path / "lancedb", dim=VECTOR_DIM)
    await index.ensure()
    return index


async def make_embedding_cache(request: pytest.FixtureRequest, tmp_path: Path) -> EmbeddingCache:
    return SqliteEmbeddingCache(tmp_path / "embedding_cache.sqlite3")


async def make_index_admin(request: pytest.FixtureRequest, tmp_path: Path) -> IndexAdmin:
    from datatorag.adapters.embedded.lancedb_index import LanceDbIndexAdmin

    return LanceDbIndexAdmin(tmp_path / "lancedb")
