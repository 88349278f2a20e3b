"""What the gateway does, independent of transport: REST (``app.py``) and gRPC (``grpc_server.py``)
call these same methods, so both have the same semantics and the same errors (``ApiError``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from datatorag.answering import AnswerEngine
from datatorag.answering.builder import build_engine
from datatorag.domain.audience import visible
from datatorag.domain.errors import NotFound
from datatorag.domain.models import DocumentStatus, SearchFilters, SearchHit
from datatorag.domain.principal import Principal
from datatorag.gateway.degraded import DEGRADED, EMBEDDER_UNAVAILABLE, EmbedderDown, GuardedEmbedder
from datatorag.gateway.deps import GatewayDeps
from datatorag.gateway.errors import ApiError
from datatorag.gateway.schemas import (
    Accepted,
    ChunkOut,
    DocumentDetail,
    DocumentList,
    DocumentOut,
    HitOut,
    QueryRequest,
    QueryResponse,
    SearchRequest,
    SearchResponse,
    StatusFilter,
)
from datatorag.ports import Embedder
from datatorag.retrieval import hybrid
from datatorag.retrieval.batching import QueryBatcher
from datatorag.retrieval.context import build_context


class QueryService:
    def __init__(self, deps: GatewayDeps) -> None:
        self.deps = deps
        # concurrent queries share one forward pass (see datatorag.retrieval.batching)
        self.embedder: Embedder = GuardedEmbedder(
            QueryBatcher(deps.embedder) if deps.batch_queries else deps.embedder
        )
        limit = deps.max_concurrent_index_queries
        self.limiter = asyncio.Semaphore(limit) if limit else None
        # /v1/answer retrieves through this service: the same batcher and index limiter
        self.answers: AnswerEngine = build_engine(
            deps.settings.answer,
            retrieve=self.retrieve,
            embedder=self.embedder,
            registry=deps.registry,
            providers=deps.answer_providers,
        )

    def _check_query(self, query: str) -> None:
        limit = self.deps.max_query_chars
        if len(query) > limit:
            raise ApiError(
                413,
                f"query is {len(query)} characters; the limit is {limit}",
                code="query_too_long",
            )

    async def _hits(self, principal: Principal, req: SearchRequest) -> tuple[list[SearchHit], bool]:
        """The hits, and whether they are degraded (BM25 alone: the embedder is down)."""
        tenant, audience = principal.tenant, principal.audience()
        self._check_query(req.query)
        filters = req.filters.to_domain() if req.filters else None
        try:
            hits = await hybrid.search(
                self.deps.index,
                self.embedder,
                tenant,
                req.query,
                req.k,
                filters,
                mode=req.mode,
                audience=audience,
                limiter=self.limiter,
            )
            return hits, False
        except EmbedderDown:
            if req.mode is not hybrid.Mode.HYBRID:
                raise
        DEGRADED.labels(EMBEDDER_UNAVAILABLE).inc()
        hits = await hybrid.search(
            self.deps.index,
            None,
            tenant,
            req.query,
            req.k,
            filters,
            mode=hybrid.Mode.BM25,
            audience=audience,
            limiter=self.limiter,
        )
        return hits, True

    async def retrieve(
        self,
        principal: Principal,
        query: str,
        k: int,
        filters: SearchFilters | None,
        query_vector: Sequence[float] | None = None,
    ) -> list[SearchHit]:
        """What answers retrieve from: the principal's tenant and audience only."""
        return await hybrid.search(
            self.deps.index,
            self.embedder,
            principal.tenant,
            query,
            k,
            filters,
            audience=principal.audience(),
            query_vector=query_vector,
            limiter=self.limiter,
        )

    async def aclose(self) -> None:
        await self.answers.close()

    async def search(self, principal: Principal, req: SearchRequest) -> SearchResponse:
        started = time.perf_counter()
        hits, degraded = await self._hits(principal, req)
        return SearchResponse(
            query=req.query,
            mode=req.mode,
            k=req.k,
            took_ms=_ms(started),
            hits=[HitOut.of(h) for h in hits],
            degraded=degraded,
        )

    async def query(self, principal: Principal, req: QueryRequest) -> QueryResponse:
        started = time.perf_counter()
        hits, degraded = await self._hits(principal, req)
        ctx = build_context(hits, max_chars=req.max_context_chars)
        return QueryResponse.of(req, hits, ctx, _ms(started)).model_copy(
            update={"degraded": degraded}
        )

    async def document(self, principal: Principal, doc_id: str) -> DocumentDetail:
        registry = self.deps.registry
        tenant = principal.tenant
        audience = principal.audience()
        current = await registry.current(tenant, doc_id)
        if (
            current is None
            or current.status is DocumentStatus.DELETED
            or not visible(current.groups, audience)
        ):
            # also what another tenant's document, or one outside the caller's audience, looks
            # like (nothing tells it exists); a deleted one is gone
            raise ApiError(404, f"document {doc_id!r} not found")
        # versions and chunks of another audience (an older version not yet re-grouped) stay out
        versions = [
            v for v in await registry.versions(tenant, doc_id) if visible(v.groups, audience)
        ]
        chunks = [
            c
            for c in await self.deps.index.get_chunks(tenant, doc_id)
            if visible(c.groups, audience)
        ]
        return DocumentDetail(
            document=DocumentOut.of(current),
            versions=[DocumentOut.of(v) for v in versions],
            chunks=[ChunkOut.of(c) for c in chunks],
            searchable=current.status is DocumentStatus.INDEXED
            and any(c.version == current.version for c in chunks),
        )

    async def documents(
        self, principal: Principal, status: StatusFilter | None, source: str | None, limit: int
    ) -> DocumentList:
        registry = self.deps.registry
        tenant = principal.tenant
        audience = principal.audience()  # readers list their audience's; admins every document
        if status is StatusFilter.STALLED:
            records = await registry.stalled(self.deps.settings.stalled_after_s, tenant=tenant)
            records = [
                r
                for r in records
                if (source is None or r.source == source) and visible(r.groups, audience)
            ][:limit]
        else:
            records = await registry.find(
                tenant=tenant,
                status=DocumentStatus(status.value) if status else None,
                source=source,
                limit=limit,
                audience=audience,
            )
        return DocumentList(count=len(records), documents=[DocumentOut.of(r) for r in records])

    async def sync(self, principal: Principal, source_id: str) -> Accepted:
        on_sync = self.deps.on_sync
        if on_sync is None:
            raise ApiError(501, "on-demand sync is not available on this gateway")
        try:
            detail = await on_sync(principal.tenant, source_id)
        except NotFound:
            raise ApiError(404, f"source {source_id!r} not found") from None
        return Accepted(detail={"source": source_id, **(detail or {})})

    async def upload(
        self,
        principal: Principal,
        filename: str,
        data: bytes,
        content_type: str | None,
        groups: tuple[str, ...] | None = None,
    ) -> Accepted:
        """``groups``: who of the tenant may see the document (None: the uploads source's
        rules). A reader may only give an audience it belongs to (it could not see the
        document otherwise, and must not hand documents to groups it is not in)."""
        on_upload = self.deps.on_upload
        if on_upload is None:
            raise ApiError(501, "document upload is not available on this gateway")
        audience = principal.audience()
        if groups is not None and audience is not None and not set(groups) <= audience:
            outside = sorted(set(groups) - audience)
            raise ApiError(
                403,
                f"audience: you are not in {', '.join(outside)}; only an admin may upload for "
                "groups it is not in",
                code="audience_forbidden",
            )
        detail = await on_upload(principal.tenant, filename, data, content_type, groups)
        return Accepted(detail=detail or {})


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
