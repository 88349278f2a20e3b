"""The query gateway's REST API.

``create_app(GatewayDeps(...))`` builds it from adapters the caller owns (and closes): the same
app runs embedded (every adapter in one process) and in production (OpenSearch, DynamoDB, the
embedder service over HTTP).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, File, Form, Path, Query, UploadFile

from datatorag.domain.audience import normalise_groups
from datatorag.gateway.answer_routes import answer_router
from datatorag.gateway.auth import ApiKeys, Caller
from datatorag.gateway.deps import GatewayDeps
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

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "missing or invalid API key"},
    422: {"model": ErrorBody, "description": "invalid request (details per field)"},
}


def create_app(deps: GatewayDeps, service: QueryService | None = None) -> FastAPI:
    """The REST app; pass the ``service`` a gRPC server shares (one batcher, one limiter)."""
    service = service or QueryService(deps)
    app = FastAPI(
        title="DatatoRAG query gateway",
        version="1",
        description=(
            "Hybrid search (k-NN + BM25 fused by reciprocal rank fusion) over your documents, "
            "LLM-ready context with citations, and document status. Authenticate with "
            "`Authorization: Bearer <key>` or `X-API-Key: <key>`; the key decides the tenant."
        ),
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.deps = deps
    app.state.api_keys = ApiKeys.from_settings(deps.settings)
    app.state.service = service
    install_error_handlers(app)
    add_health_routes(app, deps.readiness_checks())
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=MAX_JSON_BODY_BYTES,
        unlimited_paths=frozenset({"/v1/documents"}),  # uploads: limited by max_document_bytes
    )
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
        return await service.search(caller, req)

    @v1.post(
        "/query",
        response_model=QueryResponse,
        tags=["search"],
        responses={413: {"model": ErrorBody, "description": "query too long"}},
        summary="Top chunks plus a numbered context block ready for an LLM",
    )
    async def query(req: QueryRequest, caller: Caller) -> QueryResponse:
        return await service.query(caller, req)

    @v1.get(
        "/documents/{doc_id}",
        response_model=DocumentDetail,
        tags=["documents"],
        responses={404: {"model": ErrorBody, "description": "no such document"}},
        summary="A document's registry record, its versions, and its chunks in the index",
    )
    async def document(doc_id: Annotated[Name, Path()], caller: Caller) -> DocumentDetail:
        return await service.document(caller, doc_id)

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
        return await service.documents(caller, status, source, limit)

    @v1.post(
        "/sources/{source_id}/sync",
        response_model=Accepted,
        status_code=202,
        tags=["sources"],
        responses={
            404: {"model": ErrorBody, "description": "no such source"},
            501: {"model": ErrorBody, "description": "sync not configured"},
        },
        summary="Run a source now",
    )
    async def sync(
        source_id: Annotated[str, Path(min_length=1, max_length=512)], caller: Caller
    ) -> Accepted:
        return await service.sync(caller, source_id)

    @v1.post(
        "/documents",
        response_model=Accepted,
        status_code=202,
        tags=["documents"],
        responses={
            403: {"model": ErrorBody, "description": "audience names a group the caller is not in"},
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
        summary="Upload a document for ingestion",
    )
    async def upload(
        file: Annotated[UploadFile, File()],
        caller: Caller,
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
        return await service.upload(caller, file.filename or "", data, file.content_type, groups)

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
