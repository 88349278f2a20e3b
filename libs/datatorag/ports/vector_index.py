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
      filter, ``filters`` and the ``audience`` are applied inside the index query, so ``k`` hits
      come back whenever ``k`` matching chunks exist. Hits carry the record without its vector.
    * ``audience`` (the principal's: ``Principal.audience()``) keeps the chunks whose ``groups``
      share a group with it; ``None`` keeps every chunk of the tenant (an admin's). Chunks
      written before audiences existed count as ``(EVERYONE,)``.
    * ``set_groups(tenant, doc_id, version, groups)`` replaces the groups of that version's
      chunks in place (vectors and text untouched: nothing is re-embedded) and returns how many
      chunks it changed; visible to searches once it returns.
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
        *,
        audience: frozenset[str] | None = None,
    ) -> list[SearchHit]: ...

    @abc.abstractmethod
    async def bm25(
        self,
        tenant: str,
        text: str,
        k: int,
        filters: SearchFilters | None = None,
        *,
        audience: frozenset[str] | None = None,
    ) -> list[SearchHit]: ...

    @abc.abstractmethod
    async def set_groups(
        self, tenant: str, doc_id: str, version: str, groups: Sequence[str]
    ) -> int: ...

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


class IndexAdmin(abc.ABC):
    """Blue/green life of the physical indexes behind one model's logical index (the name every
    reader and writer of that model uses: an OpenSearch alias, a LanceDB alias entry).

    Contract (``datatorag.testing.conformance.index_admin``):

    * ``create(model_id, dim)`` makes a new, empty physical index for that model and dimension
      and returns its name; it serves nothing until promoted.
    * ``open(name, dim)`` is a ``VectorIndex`` on that physical index (fill it before promoting);
      ``open_serving(model_id, dim)`` one on the logical name.
    * ``promote(model_id, dim, name)`` makes ``name`` the one index serving the logical name,
      atomically for readers of the logical name, and returns the names it replaced (to drop
      after a grace period). ``serving`` names the physical index behind the logical name (None:
      there is none).
    * ``list(model_id, dim)`` names every physical index of the model and dimension;
      ``drop(name)`` deletes one (a missing one is a no-op), never a serving one (``ValueError``)
      unless ``force``: then the logical name it served is left with nothing behind it (the
      end of a model's grace period after a model change).
    """

    @abc.abstractmethod
    async def create(self, model_id: str, dim: int) -> str: ...

    @abc.abstractmethod
    def open(self, name: str, dim: int) -> VectorIndex: ...

    @abc.abstractmethod
    def open_serving(self, model_id: str, dim: int) -> VectorIndex: ...

    @abc.abstractmethod
    async def promote(self, model_id: str, dim: int, name: str) -> list[str]: ...

    @abc.abstractmethod
    async def serving(self, model_id: str, dim: int) -> str | None: ...

    @abc.abstractmethod
    async def list(self, model_id: str, dim: int) -> list[str]: ...

    @abc.abstractmethod
    async def drop(self, name: str, *, force: bool = False) -> None: ...

    async def close(self) -> None:
        pass
