"""``VectorIndex`` in memory: exact cosine k-NN and a small BM25, both filtered before ranking.

* Records are keyed by (tenant, id), as in the embedded adapter: ``upsert`` replaces, never
  duplicates, and two tenants may hold the same chunk id.
* The tenant, every ``SearchFilters`` field and the audience select the candidates first, then
  they are ranked, so ``k`` hits come back whenever ``k`` matching chunks exist.
* k-NN scans every candidate (``score``: cosine similarity). Full text is Okapi BM25 (k1 1.2,
  b 0.75) over the title and text of the candidates, tokenised as lower-case runs of letters and
  digits, so query syntax characters are just separators; only chunks sharing a term with the
  query are hits. Ties rank by chunk id, so results are deterministic.
* Hits and ``get_chunks`` carry copies of the records without their vectors.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np

from datatorag.domain.audience import normalise_groups, visible
from datatorag.domain.models import ChunkRecord, SearchFilters, SearchHit
from datatorag.ports.vector_index import VectorIndex

MAX_K = 10_000
_TOKEN = re.compile(r"\w+")
_K1 = 1.2
_B = 0.75


def tokens(text: str) -> list[str]:
    """The full-text terms of ``text``: lower-case runs of letters and digits."""
    return _TOKEN.findall(text.lower())


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt


def _matches(record: ChunkRecord, filters: SearchFilters | None) -> bool:
    if filters is None:
        return True
    for allowed, value in (
        (filters.sources, record.source),
        (filters.doc_types, record.doc_type),
        (filters.doc_ids, record.doc_id),
    ):
        if allowed is not None and value not in allowed:  # an empty allow-list matches nothing
            return False
    updated = _utc(record.updated_at)
    if filters.updated_after is not None and updated < _utc(filters.updated_after):
        return False
    return filters.updated_before is None or updated < _utc(filters.updated_before)


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise ValueError(f"k must be an int within 1..{MAX_K}, got {k!r}")


def _check_tenant(tenant: str) -> None:
    if not tenant:
        raise ValueError("tenant is required")


def _hit(record: ChunkRecord, score: float) -> SearchHit:
    return SearchHit(chunk=record.model_copy(update={"vector": None}, deep=True), score=score)


class MemoryVectorIndex(VectorIndex):
    def __init__(self, dim: int) -> None:
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.dim = dim
        self._records: dict[tuple[str, str], ChunkRecord] = {}
        self._vectors: dict[tuple[str, str], np.ndarray] = {}  # unit vectors, float64

    async def ensure(self) -> None:
        await asyncio.sleep(0)

    async def check(self) -> None:
        await asyncio.sleep(0)

    # -- writes ----------------------------------------------------------------------------
    async def upsert(self, records: Sequence[ChunkRecord]) -> int:
        batch: dict[tuple[str, str], tuple[ChunkRecord, np.ndarray]] = {}
        for r in records:  # every record is checked before any is written
            _check_tenant(r.tenant)
            if r.vector is None:
                raise ValueError(f"chunk {r.id!r} has no vector")
            if len(r.vector) != self.dim:
                raise ValueError(
                    f"chunk {r.id!r} has a {len(r.vector)}-d vector, index is {self.dim}-d"
                )
            vector = np.asarray(r.vector, dtype=np.float64)
            norm = float(np.linalg.norm(vector))
            if not np.isfinite(vector).all() or norm == 0.0:
                raise ValueError(f"chunk {r.id!r}: vectors must be finite and non-zero")
            batch[(r.tenant, r.id)] = (r.model_copy(deep=True), vector / norm)  # last one wins
        await asyncio.sleep(0)
        for key, (record, vector) in batch.items():
            self._records[key] = record
            self._vectors[key] = vector
        return len(batch)

    async def delete_document(
        self,
        tenant: str,
        doc_id: str,
        *,
        keep_version: str | None = None,
        versions: Sequence[str] | None = None,
    ) -> int:
        _check_tenant(tenant)
        await asyncio.sleep(0)
        doomed = [
            key
            for key, r in self._records.items()
            if r.tenant == tenant
            and r.doc_id == doc_id
            and (
                r.version in versions
                if versions is not None
                else keep_version is None or r.version != keep_version
            )
        ]
        for key in doomed:
            del self._records[key]
            del self._vectors[key]
        return len(doomed)

    async def set_groups(
        self, tenant: str, doc_id: str, version: str, groups: Sequence[str]
    ) -> int:
        _check_tenant(tenant)
        stored = normalise_groups(groups)
        await asyncio.sleep(0)
        changed = 0
        for key, r in self._records.items():
            if r.tenant == tenant and r.doc_id == doc_id and r.version == version:
                self._records[key] = r.model_copy(update={"groups": stored})
                changed += 1
        return changed

    # -- reads -----------------------------------------------------------------------------
    def _candidates(
        self, tenant: str, filters: SearchFilters | None, audience: frozenset[str] | None
    ) -> list[tuple[tuple[str, str], ChunkRecord]]:
        _check_tenant(tenant)
        return [
            (key, r)
            for key, r in self._records.items()
            if r.tenant == tenant and _matches(r, filters) and visible(r.groups, audience)
        ]

    async def knn(
        self,
        tenant: str,
        vector: Sequence[float],
        k: int,
        filters: SearchFilters | None = None,
        *,
        audience: frozenset[str] | None = None,
    ) -> list[SearchHit]:
        _check_k(k)
        query = np.asarray(vector, dtype=np.float64)
        if query.shape != (self.dim,):
            raise ValueError(f"query vector must have {self.dim} dimensions, got {query.shape}")
        norm = float(np.linalg.norm(query))
        if not np.isfinite(query).all() or norm == 0.0:
            raise ValueError("query vector must be finite and non-zero")
        query /= norm
        await asyncio.sleep(0)
        scored = [
            (float(self._vectors[key] @ query), r)
            for key, r in self._candidates(tenant, filters, audience)
        ]
        scored.sort(key=lambda item: (-item[0], item[1].id))
        return [_hit(r, score) for score, r in scored[:k]]

    async def bm25(
        self,
        tenant: str,
        text: str,
        k: int,
        filters: SearchFilters | None = None,
        *,
        audience: frozenset[str] | None = None,
    ) -> list[SearchHit]:
        _check_k(k)
        terms = set(tokens(text))
        await asyncio.sleep(0)
        candidates = self._candidates(tenant, filters, audience)
        if not terms or not candidates:
            return []
        docs = [(r, Counter(tokens(f"{r.title or ''} {r.text}"))) for _, r in candidates]
        n = len(docs)
        avg_len = sum(sum(tf.values()) for _, tf in docs) / n or 1.0
        df = {t: sum(1 for _, tf in docs if t in tf) for t in terms}
        scored: list[tuple[float, ChunkRecord]] = []
        for r, tf in docs:
            length = sum(tf.values())
            score = 0.0
            for t in terms:
                f = tf.get(t, 0)
                if f:
                    idf = math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5))
                    score += idf * f * (_K1 + 1) / (f + _K1 * (1 - _B + _B * length / avg_len))
            if score > 0:
                scored.append((score, r))
        scored.sort(key=lambda item: (-item[0], item[1].id))
        return [_hit(r, score) for score, r in scored[:k]]

    async def get_chunks(self, tenant: str, doc_id: str) -> list[ChunkRecord]:
        _check_tenant(tenant)
        await asyncio.sleep(0)
        found = [r for r in self._records.values() if r.tenant == tenant and r.doc_id == doc_id]
        found.sort(key=lambda r: (r.version, r.chunk_index))
        return [r.model_copy(update={"vector": None}, deep=True) for r in found]

    async def count(self, tenant: str | None = None) -> int:
        await asyncio.sleep(0)
        if tenant is None:
            return len(self._records)
        return sum(1 for r in self._records.values() if r.tenant == tenant)
