"""The query gateway over gRPC (``proto/gateway.proto``): Search, Query, GetDocument.

Same semantics as REST because both call ``QueryService`` and validate through the same pydantic
request models. The principal comes from the ``authorization: Bearer <key or token>`` or
``x-api-key`` metadata, through the same edge as REST (``gateway.edge``: authentication, the
failed-auth and per-principal rate limits), and every call writes the same audit line
(``transport: grpc``). Failures map to status codes (``ApiError.status`` -> gRPC code) with the
REST error code in the ``error-code`` trailing metadata (``retry-after`` when rate limited);
nothing internal leaks from an unexpected error.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
import structlog
from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import ValidationError

from datatorag.answering import AnswerUnavailable
from datatorag.domain.errors import DependencyError, NotFound, PermanentError, TransientError
from datatorag.domain.models import no_control_characters
from datatorag.domain.principal import Principal
from datatorag.gateway import answer_grpc, audit
from datatorag.gateway.answer_routes import note_documents as note_answer_documents
from datatorag.gateway.answers import open_stream, unavailable
from datatorag.gateway.auth import AuthError
from datatorag.gateway.edge import Edge, Refusal
from datatorag.gateway.errors import ApiError, dependency_kind, validation_details
from datatorag.gateway.grpc_gen import gateway_pb2 as pb
from datatorag.gateway.grpc_gen import gateway_pb2_grpc as pb_grpc
from datatorag.gateway.metrics import observe
from datatorag.gateway.schemas import (
    ChunkOut,
    DocumentDetail,
    DocumentOut,
    HitOut,
    QueryRequest,
    QueryResponse,
    SearchRequest,
    SearchResponse,
)
from datatorag.gateway.service import QueryService
from datatorag.observability.log import get_logger

if TYPE_CHECKING:
    from fastapi import FastAPI
from datatorag.retrieval.hybrid import Mode

log = get_logger("gateway.grpc")

T = TypeVar("T")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_MODE_IN = {
    pb.MODE_UNSPECIFIED: Mode.HYBRID,
    pb.MODE_HYBRID: Mode.HYBRID,
    pb.MODE_KNN: Mode.KNN,
    pb.MODE_BM25: Mode.BM25,
}
_MODE_OUT = {Mode.HYBRID: pb.MODE_HYBRID, Mode.KNN: pb.MODE_KNN, Mode.BM25: pb.MODE_BM25}
_STATUS = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    501: grpc.StatusCode.UNIMPLEMENTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}
# Request messages above this are refused by gRPC itself (RESOURCE_EXHAUSTED), like REST's 413.
MAX_MESSAGE_BYTES = 1 << 20


# ------------------------------------------------------------------------------ proto -> model


def _ts(value: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value if value.tzinfo else value.replace(tzinfo=UTC))
    return ts


def _filters(msg: pb.Filters) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    for name in ("sources", "doc_types", "doc_ids"):
        values = list(getattr(msg, name))
        if values:
            out[name] = values
    for name in ("updated_after", "updated_before"):
        if msg.HasField(name):
            out[name] = getattr(msg, name).ToDatetime(tzinfo=UTC)
    return out or None


filters_of = _filters


def _common(msg: pb.SearchRequest | pb.QueryRequest) -> dict[str, Any]:
    data: dict[str, Any] = {"query": msg.query, "mode": _MODE_IN.get(msg.mode, msg.mode)}
    if msg.HasField("k"):
        data["k"] = msg.k
    if msg.HasField("filters"):
        data["filters"] = _filters(msg.filters)
    return data


def search_request(msg: pb.SearchRequest) -> SearchRequest:
    return SearchRequest.model_validate(_common(msg))


def query_request(msg: pb.QueryRequest) -> QueryRequest:
    data = _common(msg)
    if msg.HasField("max_context_chars"):
        data["max_context_chars"] = msg.max_context_chars
    return QueryRequest.model_validate(data)


# ------------------------------------------------------------------------------ model -> proto


def _hit(h: HitOut) -> pb.Hit:
    c = h.citation
    return pb.Hit(
        id=h.id,
        text=h.text,
        score=h.score,
        ranks=h.ranks,
        updated_at=_ts(h.updated_at),
        citation=pb.Citation(
            doc_id=c.doc_id,
            version=c.version,
            title=c.title,
            path=c.path,
            source=c.source,
            section=c.section,
            doc_type=c.doc_type,
            page_start=c.page_start,
            page_end=c.page_end,
            chunk_index=c.chunk_index,
            chunk_id=c.chunk_id,
        ),
    )


def search_response(r: SearchResponse) -> pb.SearchResponse:
    return pb.SearchResponse(
        query=r.query,
        mode=_MODE_OUT[r.mode],
        k=r.k,
        took_ms=r.took_ms,
        hits=[_hit(h) for h in r.hits],
        degraded=r.degraded,
    )


def query_response(r: QueryResponse) -> pb.QueryResponse:
    return pb.QueryResponse(
        query=r.query,
        mode=_MODE_OUT[r.mode],
        took_ms=r.took_ms,
        context=r.context,
        truncated=r.truncated,
        degraded=r.degraded,
        hits=[_hit(h) for h in r.hits],
        citations=[
            pb.ContextCitation(
                n=c.n,
                label=c.label,
                doc_id=c.doc_id,
                version=c.version,
                title=c.title,
                path=c.path,
                source=c.source,
                pages=c.pages,
                page_start=c.page_start,
                page_end=c.page_end,
                chunk_indexes=c.chunk_indexes,
                chunk_ids=c.chunk_ids,
            )
            for c in r.citations
        ],
    )


def _document(d: DocumentOut) -> pb.Document:
    data = d.model_dump(exclude={"created_at", "updated_at", "status"})
    return pb.Document(
        **data, status=d.status.value, created_at=_ts(d.created_at), updated_at=_ts(d.updated_at)
    )


def _chunk(c: ChunkOut) -> pb.Chunk:
    return pb.Chunk(**c.model_dump(exclude={"updated_at"}), updated_at=_ts(c.updated_at))


def document_detail(d: DocumentDetail) -> pb.DocumentDetail:
    return pb.DocumentDetail(
        document=_document(d.document),
        versions=[_document(v) for v in d.versions],
        chunks=[_chunk(c) for c in d.chunks],
        searchable=d.searchable,
    )


# ------------------------------------------------------------------------------ the service


Context = grpc.aio.ServicerContext[Any, Any]


class GatewayServicer(pb_grpc.QueryGatewayServicer):
    def __init__(self, service: QueryService, edge: Edge) -> None:
        self.service = service
        self.edge = edge
        self.timeout_s = service.deps.settings.gateway_backend_timeout_s

    async def _bounded(self, call: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self.timeout_s):
                return await call
        except TimeoutError:
            raise ApiError(
                504, "a backend call timed out; try again later", code="timeout"
            ) from None

    async def _admit(self, metadata: dict[str, str], context: Context) -> Principal:
        try:
            principal = await self.edge.admit(
                metadata.get("authorization"), metadata.get("x-api-key"), _peer_host(context)
            )
        except Refusal as refusal:
            entry = audit.current()
            if entry is not None:
                entry.reason = refusal.message
            raise ApiError(
                refusal.status, refusal.message, code=refusal.code, headers=refusal.headers
            ) from None
        entry = audit.current()
        if entry is not None:
            entry.principal = principal
        return principal

    async def Search(self, request: pb.SearchRequest, context: Context) -> pb.SearchResponse:
        async def run(principal: Principal) -> pb.SearchResponse:
            req = search_request(request)
            audit.note_query(req.query)
            resp = await self._bounded(self.service.search(principal, req))
            audit.note_documents(h.citation.doc_id for h in resp.hits)
            return search_response(resp)

        return await self._call("Search", context, run)

    async def Query(self, request: pb.QueryRequest, context: Context) -> pb.QueryResponse:
        async def run(principal: Principal) -> pb.QueryResponse:
            req = query_request(request)
            audit.note_query(req.query)
            resp = await self._bounded(self.service.query(principal, req))
            audit.note_documents(h.citation.doc_id for h in resp.hits)
            return query_response(resp)

        return await self._call("Query", context, run)

    async def GetDocument(
        self, request: pb.GetDocumentRequest, context: Context
    ) -> pb.DocumentDetail:
        async def run(principal: Principal) -> pb.DocumentDetail:
            doc_id = request.doc_id.strip()
            if not doc_id or len(doc_id) > 512:
                raise ApiError(422, "doc_id: must be 1 to 512 characters")
            try:
                no_control_characters(doc_id)
            except ValueError as exc:
                raise ApiError(422, f"doc_id: {exc}") from None
            detail = await self._bounded(self.service.document(principal, doc_id))
            audit.note_documents([detail.document.doc_id])
            return document_detail(detail)

        return await self._call("GetDocument", context, run)

    async def Answer(
        self, request: pb.AnswerRequest, context: Context
    ) -> AsyncIterator[pb.AnswerEvent]:
        """Server stream; primed like REST's, so an unanswerable request fails before any
        event, and a failure mid-answer ends the stream with its status."""
        metadata, request_id = await self._begin(context)
        tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
        entry, audit_token = audit.open_entry()
        started = time.perf_counter()
        code, message, error_code = grpc.StatusCode.OK, "", ""
        trailers: tuple[tuple[str, str], ...] = ()
        try:
            principal = await self._admit(metadata, context)
            req = answer_grpc.answer_request(request)
            audit.note_query(req.query)
            primed = await open_stream(self.service, principal, req, request_id)
            async for event in primed.events():
                note_answer_documents(event)
                yield answer_grpc.event(event)
        except AnswerUnavailable as exc:
            code, message, error_code = _failure("Answer", unavailable(exc))
        except Exception as exc:  # noqa: BLE001 - every failure becomes a status (_failure)
            code, message, error_code = _failure("Answer", exc)
            trailers = _retry_after(exc)
        finally:
            self._end("Answer", started, code, entry, context)
            audit.close_entry(audit_token)
            structlog.contextvars.reset_contextvars(**tokens)
        if code is not grpc.StatusCode.OK:
            await context.abort(
                code,
                message,
                trailing_metadata=(
                    ("error-code", error_code),
                    ("x-request-id", request_id),
                    *trailers,
                ),
            )

    async def _begin(self, context: Context) -> tuple[dict[str, str], str]:
        metadata = {
            k.lower(): v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)
        }
        incoming = metadata.get("x-request-id", "")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        await context.send_initial_metadata((("x-request-id", request_id),))
        return metadata, request_id

    def _end(
        self,
        method: str,
        started: float,
        code: grpc.StatusCode,
        entry: audit.AuditEntry,
        context: Context,
    ) -> None:
        elapsed = time.perf_counter() - started
        observe(f"/grpc/{method}", "GRPC", code.name, elapsed)
        audit.emit(
            entry,
            transport="grpc",
            method="GRPC",
            route=f"/grpc/{method}",
            status=code.name,
            duration_ms=round(elapsed * 1000, 2),
            client=_peer_host(context),
        )

    async def _call(
        self, method: str, context: Context, run: Callable[[Principal], Awaitable[T]]
    ) -> T:
        metadata, request_id = await self._begin(context)
        tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
        entry, audit_token = audit.open_entry()
        started = time.perf_counter()
        code, message, error_code = grpc.StatusCode.OK, "", ""
        trailers: tuple[tuple[str, str], ...] = ()
        try:
            principal = await self._admit(metadata, context)
            return await run(principal)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a status (_failure)
            code, message, error_code = _failure(method, exc)
            trailers = _retry_after(exc)
        finally:
            self._end(method, started, code, entry, context)
            audit.close_entry(audit_token)
            structlog.contextvars.reset_contextvars(**tokens)
        await context.abort(
            code,
            message,
            trailing_metadata=(("error-code", error_code), ("x-request-id", request_id), *trailers),
        )
        raise AssertionError("unreachable: abort raises")  # pragma: no cover


def _retry_after(exc: Exception) -> tuple[tuple[str, str], ...]:
    headers = exc.headers if isinstance(exc, ApiError) and exc.headers else {}
    value = headers.get("Retry-After")
    return (("retry-after", value),) if value else ()


def _peer_host(context: Context) -> str | None:
    """``ipv4:127.0.0.1:5555`` / ``ipv6:[::1]:5555`` -> the address without the port."""
    peer = context.peer() or ""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rsplit(":", 1)[0]
    if kind == "ipv6":
        return rest.rsplit(":", 1)[0].strip("[]")
    return peer or None


def _failure(method: str, exc: Exception) -> tuple[grpc.StatusCode, str, str]:
    """The status, message and REST error code for a failed streaming call, as ``_call`` maps
    them for unary calls (nothing internal leaks)."""
    if isinstance(exc, AuthError):
        return grpc.StatusCode.UNAUTHENTICATED, exc.message, "unauthenticated"
    if isinstance(exc, ValidationError):
        message, _ = validation_details(exc.errors())
        return grpc.StatusCode.INVALID_ARGUMENT, message, "validation_error"
    if isinstance(exc, ApiError):
        return _STATUS.get(exc.status, grpc.StatusCode.UNKNOWN), exc.message, exc.code
    if isinstance(exc, NotFound):
        return grpc.StatusCode.NOT_FOUND, str(exc) or "not found", "not_found"
    if isinstance(exc, PermanentError):
        return grpc.StatusCode.INVALID_ARGUMENT, exc.reason, exc.code
    if isinstance(exc, DependencyError):
        log.error("dependency failed", dependency=exc.dependency, detail=exc.detail)
        message = f"{dependency_kind(exc.dependency)} is unavailable; try again later"
        return grpc.StatusCode.UNAVAILABLE, message, "unavailable"
    if isinstance(exc, TransientError):
        log.warning("transient failure", error=str(exc))
        message = "a dependency is temporarily unavailable; try again later"
        return grpc.StatusCode.UNAVAILABLE, message, "unavailable"
    log.error("unhandled error", method=method, exc_info=exc)
    return grpc.StatusCode.INTERNAL, "internal error", "internal_error"


def create_grpc_server(
    service: QueryService, edge: Edge, address: str = "127.0.0.1:50051"
) -> tuple[grpc.aio.Server, int]:
    """A grpc.aio server (not started) bound to ``address``; returns it and the bound port."""
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
        ]
    )
    # the generated module carries no annotations
    pb_grpc.add_QueryGatewayServicer_to_server(  # type: ignore[no-untyped-call]
        GatewayServicer(service, edge), server
    )
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot bind the gRPC server to {address}")
    return server, port


def grpc_server_for_app(
    app: FastAPI, address: str = "127.0.0.1:50051"
) -> tuple[grpc.aio.Server, int]:
    """The gRPC server sharing a REST app's service (one query batcher, one set of adapters)."""
    return create_grpc_server(app.state.service, app.state.edge, address)
