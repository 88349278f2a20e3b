"""The query gateway's REST API.

``create_app(GatewayDeps(...))`` builds it from adapters the caller owns (and closes): the same
app runs embedded (every adapter in one process) and in production (OpenSearch, DynamoDB, the
embedder service over HTTP).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, FastAPI, File, Form, Path, Query, UploadFile
from starlette.middleware.cors import CORSMiddleware

from datatorag.domain.audience import normalise_groups
from datatorag.gateway import audit
from datatorag.gateway.admin import Admin
from datatorag.gateway.answer_routes import answer_router
from datatorag.gateway.auth import Caller
from datatorag.gateway.deps import GatewayDeps
from datatorag.gateway.edge import Edge, EdgeMiddleware
from datatorag.gateway.errors import ApiError, install_error_handlers
from datatorag.gateway.lifecycle_routes import lifecycle_router
from datatorag.gateway.middleware import RequestContextMiddleware
from datatorag.gateway.schemas import (
    Accepted,
    DocumentDetail,
    DocumentList,
    ErrorBody,
    Name,
    QueryRequest,
    QueryResponse,
    SearchRequest,
    SearchResponse,
    StatusFilter,
)
from datatorag.gateway.service import QueryService
from datatorag.runtime import add_health_routes

# JSON bodies are small; the limit stops a multi-megabyte body before it is parsed.
MAX_JSON_BODY_BYTES = 1 << 20

T = TypeVar("T")

# What the edge and the error handlers may answer on any route (see gateway.edge).
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "the body is not valid UTF-8 JSON"},
    401: {"model": ErrorBody, "description": "missing or invalid credentials (the reason)"},
    408: {"model": ErrorBody, "description": "the request body did not arrive in time"},
    413: {"model": ErrorBody, "description": "request body or query too large"},
    415: {"model": ErrorBody, "description": "body not of the route's media type"},
    422: {"model": ErrorBody, "description": "invalid request (details per field)"},
    429: {"model": ErrorBody, "description": "rate limited; see Retry-After"},
    503: {"model": ErrorBody, "description": "a dependency is unavailable; see Retry-After"},
    504: {"model": ErrorBody, "description": "a backend call timed out"},
}
_ADMIN_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorBody, "description": "the caller is not an admin"},
}


async def bounded(deps: GatewayDeps, call: Awaitable[T]) -> T:
    """A request's backend calls (index, embedder, registry, connector), bounded in time."""
    try:
        async with asyncio.timeout(deps.settings.gateway_backend_timeout_s):
            return await call
    except TimeoutError:
        raise ApiError(504, "a backend call timed out; try again later", code="timeout") from None


def create_app(deps: GatewayDeps, service: QueryService | None = None) -> FastAPI:
    """The REST app; pass the ``service`` a gRPC server shares (one batcher, one limiter)."""
    service = service or QueryService(deps)
    settings = deps.settings
    edge = Edge.from_settings(settings, deps.registry)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await edge.aclose()

    app = FastAPI(
        lifespan=lifespan,
        title="DatatoRAG query gateway",
        version="1",
        description=(
            "Hybrid search (k-NN + BM25 fused by reciprocal rank fusion) over your documents, "
            "LLM-ready context with citations, and document status. Authenticate with "
            "`Authorization: Bearer <API key or OIDC token>` or `X-API-Key: <key>`; the "
            "credential decides the tenant, groups and role."
        ),
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.deps = deps
    app.state.edge = edge
    app.state.service = service
    install_error_handlers(app)
    add_health_routes(app, deps.readiness_checks())
    # outermost last: request context (id, audit line, security headers) > CORS (preflights
    # carry no credentials) > the edge (authentication, limits) > the routes
    app.add_middleware(
        EdgeMiddleware,
        edge=edge,
        max_json_bytes=MAX_JSON_BODY_BYTES,
        max_upload_bytes=settings.max_document_bytes,
        body_timeout_s=settings.gateway_body_timeout_s,
    )
    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
            max_age=600,
        )
    app.add_middleware(RequestContextMiddleware)
    app.include_router(_router(service, deps))
    app.include_router(lifecycle_router(deps), responses=_ERRORS)
    app.include_router(answer_router(service))
    return app


def _router(service: QueryService, deps: GatewayDeps) -> APIRouter:
    v1 = APIRouter(prefix="/v1", responses=_ERRORS)

    @v1.post(
        "/search",
        response_model=SearchResponse,
        tags=["search"],
        responses={413: {"model": ErrorBody, "description": "query too long"}},
        summary="Top chunks for a query, with citations",
    )
    async def search(req: SearchRequest, caller: Caller) -> SearchResponse:
        audit.note_query(req.query)
        resp = await bounded(deps, service.search(caller, req))
        audit.note_documents(h.citation.doc_id for h in resp.hits)
        return resp

    @v1.post(
        "/query",
        response_model=QueryResponse,
        tags=["search"],
        responses={413: {"model": ErrorBody, "description": "query too long"}},
        summary="Top chunks plus a numbered context block ready for an LLM",
    )
    async def query(req: QueryRequest, caller: Caller) -> QueryResponse:
        audit.note_query(req.query)
        resp = await bounded(deps, service.query(caller, req))
        audit.note_documents(h.citation.doc_id for h in resp.hits)
        return resp

    @v1.get(
        "/documents/{doc_id}",
        response_model=DocumentDetail,
        tags=["documents"],
        responses={404: {"model": ErrorBody, "description": "no such document"}},
        summary="A document's registry record, its versions, and its chunks in the index",
    )
    async def document(doc_id: Annotated[Name, Path()], caller: Caller) -> DocumentDetail:
        resp = await bounded(deps, service.document(caller, doc_id))
        audit.note_documents([resp.document.doc_id])
        return resp

    @v1.get(
        "/documents",
        response_model=DocumentList,
        tags=["documents"],
        summary="Per-document state (current versions), incl. failures with their reasons",
    )
    async def documents(
        caller: Caller,
        status: Annotated[
            StatusFilter | None,
            Query(description="a status, or 'stalled' (non-final for too long)"),
        ] = None,
        source: Annotated[Name | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> DocumentList:
        resp = await bounded(deps, service.documents(caller, status, source, limit))
        audit.note_documents(d.doc_id for d in resp.documents)
        return resp

    @v1.post(
        "/sources/{source_id}/sync",
        response_model=Accepted,
        status_code=202,
        tags=["sources"],
        responses={
            **_ADMIN_ERRORS,
            404: {"model": ErrorBody, "description": "no such source"},
            501: {"model": ErrorBody, "description": "sync not configured"},
        },
        summary="Run a source now (admin)",
    )
    async def sync(
        source_id: Annotated[str, Path(min_length=1, max_length=512)], admin: Admin
    ) -> Accepted:
        return await bounded(deps, service.sync(admin, source_id))

    @v1.post(
        "/documents",
        response_model=Accepted,
        status_code=202,
        tags=["documents"],
        responses={
            **_ADMIN_ERRORS,
            413: {"model": ErrorBody, "description": "file over the size limit"},
            415: {
                "model": ErrorBody,
                "description": "content not a supported type, or not "
                "the type its name says (details name the detected type)",
            },
            501: {"model": ErrorBody, "description": "upload not configured"},
            503: {"model": ErrorBody, "description": "the landing zone is unavailable"},
            507: {"model": ErrorBody, "description": "no room to store the upload"},
        },
        summary="Upload a document for ingestion (admin)",
    )
    async def upload(
        file: Annotated[UploadFile, File()],
        admin: Admin,
        audience: Annotated[
            list[str] | None,
            Form(
                description="who of the tenant may see the document: group names, "
                "comma-separated or the field repeated (default: the uploads source's rules)"
            ),
        ] = None,
    ) -> Accepted:
        if deps.on_upload is None:
            raise ApiError(501, "document upload is not available on this gateway")
        groups = _audience_field(audience)
        limit = deps.settings.max_document_bytes
        data = await file.read(limit + 1)
        if len(data) > limit:
            raise ApiError(413, f"file is over the {limit}-byte limit", code="file_too_large")
        return await service.upload(admin, file.filename or "", data, file.content_type, groups)

    return v1


def _audience_field(values: list[str] | None) -> tuple[str, ...] | None:
    """The upload's ``audience`` form field(s) as groups; a 422 naming what is wrong."""
    if not values:
        return None
    try:
        return normalise_groups(g for value in values for g in value.split(",") if g.strip())
    except ValueError as exc:
        message = f"audience: {exc}"
        raise ApiError(
            422,
            message,
            code="validation_error",
            details=[{"field": "audience", "message": message, "type": "value_error"}],
        ) from exc
