"""Vector index port: chunk records with k-NN and BM25, always scoped to one tenant."""

from __future__ import annotations

import abc
from collections.abc import Sequence

from datatorag.domain.models import ChunkRecord, SearchFilters, SearchHit


class VectorIndex(abc.ABC):
    """Contract (``datatorag.testing.conformance.vector_index``):

    * ``upsert`` is idempotent by ``ChunkRecord.id``: the same records twice leave one copy.
    * ``delete_document(tenant, doc_id, keep_version=v)`` removes that document's chunks of every
      version except ``v`` (None: all); with ``versions=[...]`` it removes exactly the chunks of
      those versions (none for an empty list), so a writer can drop the versions it knows to be
      older without ever touching a newer one. Returns how many chunks were removed.
    * ``knn`` and ``bm25`` return at most ``k`` hits of ``tenant`` only, best first; the tenant
      filter and ``filters`` are applied inside the index query, so ``k`` hits come back whenever
      ``k`` matching chunks exist. Hits carry the record without its vector.
    * k-NN uses cosine similarity (vectors are L2-normalised); ``score`` is higher-is-better.
    * ``get_chunks`` returns a document's chunks ordered by (version, chunk_index).
    * Writes are visible to searches once ``upsert``/``delete_document`` return.
    """

    dim: int

    @abc.abstractmethod
    async def ensure(self) -> None:
        """Create the index/table (and alias) when missing; idempotent."""

    @abc.abstractmethod
    async def upsert(self, records: Sequence[ChunkRecord]) -> int: ...

    @abc.abstractmethod
    async def delete_document(
        self,
        tenant: str,
        doc_id: str,
        *,
        keep_version: str | None = None,
        versions: Sequence[str] | None = None,
    ) -> int: ...

    @abc.abstractmethod
    async def knn(
        self,
        tenant: str,
        vector: Sequence[float],
        k: int,
        filters: SearchFilters | None = None,
    ) -> list[SearchHit]: ...

    @abc.abstractmethod
    async def bm25(
        self, tenant: str, text: str, k: int, filters: SearchFilters | None = None
    ) -> list[SearchHit]: ...

    @abc.abstractmethod
    async def get_chunks(self, tenant: str, doc_id: str) -> list[ChunkRecord]: ...

    @abc.abstractmethod
    async def count(self, tenant: str | None = None) -> int: ...

    @abc.abstractmethod
    async def check(self) -> None:
        """Raise ``DependencyError`` when the index is missing, unreachable, or fails a read as a
        query makes one. Queries on a missing index raise ``DependencyError`` too (a 503)."""

    async def close(self) -> None:
        pass
