"""The gRPC gateway: a real grpc.aio server and client over 127.0.0.1, on the same real adapters
(LanceDB, SQLite registry, MiniLM) and corpus as the REST tests."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from datatorag.adapters.embedded.lancedb_index import LanceDbIndex
from datatorag.adapters.embedded.sqlite_registry import SqliteRegistry
from datatorag.config import EmbeddingSettings, Settings
from datatorag.domain.errors import DependencyError
from datatorag.embedding.local import LocalEmbedder
from datatorag.gateway import GatewayDeps, create_app
from datatorag.gateway.grpc_gen import gateway_pb2 as pb
from datatorag.gateway.grpc_gen import gateway_pb2_grpc as pb_grpc
from datatorag.gateway.grpc_server import grpc_server_for_app
from datatorag.gateway.metrics import REQUESTS
from tests.integration.test_gateway_rest import KEY_A, KEY_B, _ingest

pytestmark = pytest.mark.asyncio(loop_scope="session")

A = (("authorization", f"Bearer {KEY_A}"),)
B = (("x-api-key", KEY_B),)


@pytest.fixture(scope="module")
def embedder() -> LocalEmbedder:
    return LocalEmbedder(EmbeddingSettings())


@pytest.fixture(scope="module")
async def stack(tmp_path_factory, embedder):
    root = tmp_path_factory.mktemp("gateway-grpc")
    settings = Settings(api_keys=f"{KEY_A}=acme,{KEY_B}=globex", data_dir=root)
    index = LanceDbIndex(root / "lancedb", dim=embedder.dim, table="chunks_test_384")
    await index.ensure()
    registry = SqliteRegistry(root / "registry.sqlite3")
    await _ingest(index, registry, embedder)
    yield settings, index, registry
    await registry.close()
    await index.close()


async def _serve(deps: GatewayDeps):
    server, port = grpc_server_for_app(create_app(deps), "127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    return server, channel, pb_grpc.QueryGatewayStub(channel)


@pytest.fixture(scope="module")
async def stub(stack, embedder):
    settings, index, registry = stack
    server, channel, stub = await _serve(GatewayDeps(settings, index, embedder, registry))
    yield stub
    await channel.close()
    await server.stop(None)


async def _error(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value


def _trailing(err: grpc.aio.AioRpcError) -> dict[str, str]:
    return dict(err.trailing_metadata() or ())


def _ts(value: str) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(datetime.fromisoformat(value).replace(tzinfo=UTC))
    return ts


async def test_search_matches_rest_semantics(stub) -> None:
    call = stub.Search(
        pb.SearchRequest(query="How many weeks of paid parental leave do new parents get?", k=3),
        metadata=(*A, ("x-request-id", "grpc-req-1")),
    )
    resp = await call
    assert dict(await call.initial_metadata())["x-request-id"] == "grpc-req-1"
    assert resp.mode == pb.MODE_HYBRID and resp.k == 3 and len(resp.hits) == 3
    top = resp.hits[0]
    assert top.id == "acme-leave:v2:0" and "sixteen weeks" in top.text
    assert set(top.ranks) == {"knn", "bm25"}
    c = top.citation
    assert (
        c.doc_id,
        c.version,
        c.title,
        c.path,
        c.source,
        c.page_start,
        c.page_end,
        c.chunk_index,
        c.chunk_id,
    ) == (
        "acme-leave",
        "v2",
        "Parental Leave Policy",
        "hr/acme-leave.pdf",
        "hr",
        1,
        1,
        0,
        "acme-leave:v2:0",
    )
    assert not c.HasField("section")  # None in REST is unset here
    assert top.updated_at.ToDatetime().year == 2026


@pytest.mark.parametrize("mode", [pb.MODE_HYBRID, pb.MODE_KNN, pb.MODE_BM25])
async def test_tenant_isolation_over_grpc(stub, mode) -> None:
    req = pb.SearchRequest(
        query="Project Nightingale confidential codename budget", k=10, mode=mode
    )
    mine = await stub.Search(req, metadata=A)
    assert mine.hits[0].citation.doc_id == "acme-security"
    theirs = await stub.Search(req, metadata=B)
    assert {h.citation.doc_id for h in theirs.hits} <= {"globex-handbook"}
    assert len(theirs.hits) == (0 if mode == pb.MODE_BM25 else 2)


async def test_filters_over_grpc(stub) -> None:
    q = "company policy for employees"
    it = await stub.Search(
        pb.SearchRequest(query=q, filters=pb.Filters(sources=["it"])), metadata=A
    )
    assert it.hits and {h.citation.doc_id for h in it.hits} == {"acme-security"}
    recent = await stub.Search(
        pb.SearchRequest(query=q, filters=pb.Filters(updated_after=_ts("2025-01-01T00:00:00"))),
        metadata=A,
    )
    assert recent.hits and "acme-security" not in {h.citation.doc_id for h in recent.hits}
    # an empty repeated field is no restriction (proto3 cannot tell empty from unset)
    unrestricted = await stub.Search(
        pb.SearchRequest(query=q, filters=pb.Filters(sources=[])), metadata=A
    )
    assert len({h.citation.doc_id for h in unrestricted.hits}) == 3


async def test_query_over_grpc(stub) -> None:
    resp = await stub.Query(
        pb.QueryRequest(query="parental leave weeks and notice to manager", k=3), metadata=A
    )
    assert resp.context.startswith(
        "[1] Parental Leave Policy — pp. 1–2 — doc acme-leave — chunks 0–1\n"
    )
    first = resp.citations[0]
    assert first.n == 1 and list(first.chunk_indexes) == [0, 1] and first.pages == "pp. 1–2"
    assert len(resp.hits) == 3 and not resp.truncated
    small = await stub.Query(pb.QueryRequest(query="policy", max_context_chars=200), metadata=A)
    assert len(small.context) <= 200 and small.truncated


async def test_get_document_over_grpc(stub) -> None:
    detail = await stub.GetDocument(pb.GetDocumentRequest(doc_id="acme-leave"), metadata=A)
    assert detail.document.version == "v2" and detail.document.status == "INDEXED"
    assert [v.version for v in detail.versions] == ["v2", "v1"]
    assert [c.id for c in detail.chunks] == ["acme-leave:v2:0", "acme-leave:v2:1"]
    assert detail.searchable
    other = await _error(stub.GetDocument(pb.GetDocumentRequest(doc_id="acme-leave"), metadata=B))
    assert other.code() == grpc.StatusCode.NOT_FOUND
    assert other.details() == "document 'acme-leave' not found"
    empty = await _error(stub.GetDocument(pb.GetDocumentRequest(doc_id=" "), metadata=A))
    assert empty.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ((), "missing credentials"),
        ((("authorization", "Bearer wrong"),), "invalid API key"),
        ((("x-api-key", "wrong"),), "invalid API key"),
        ((("authorization", "Basic abc"),), "must be 'Bearer <credential>'"),
    ],
)
async def test_unauthenticated(stub, metadata, message) -> None:
    err = await _error(stub.Search(pb.SearchRequest(query="leave"), metadata=metadata))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED and message in err.details()
    assert _trailing(err)["error-code"] == "unauthenticated"


@pytest.mark.parametrize(
    ("request_", "fragment", "error_code"),
    [
        (
            pb.SearchRequest(query="leave", k=0),
            "k: Input should be greater than or equal to 1",
            "validation_error",
        ),
        (
            pb.SearchRequest(query="leave", k=101),
            "k: Input should be less than or equal to 100",
            "validation_error",
        ),
        (
            pb.SearchRequest(query="   "),
            "query: String should have at least 1 character",
            "validation_error",
        ),
        (
            pb.SearchRequest(query="leave", mode=7),
            "mode: Input should be 'hybrid', 'knn' or 'bm25'",
            "validation_error",
        ),
        (
            pb.SearchRequest(
                query="leave",
                filters=pb.Filters(
                    updated_after=_ts("2026-01-02T00:00:00"),
                    updated_before=_ts("2026-01-01T00:00:00"),
                ),
            ),
            "updated_after must not be later than updated_before",
            "validation_error",
        ),
        (
            pb.SearchRequest(query="leave " * 400),
            "query is 2399 characters; the limit is 2000",
            "query_too_long",
        ),
    ],
)
async def test_invalid_arguments(stub, request_, fragment, error_code) -> None:
    err = await _error(stub.Search(request_, metadata=A))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert fragment in err.details()
    assert _trailing(err)["error-code"] == error_code
    assert _trailing(err)["x-request-id"]


async def test_oversized_message_is_refused(stub) -> None:
    err = await _error(stub.Search(pb.SearchRequest(query="x" * (2 << 20)), metadata=A))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_unexpected_and_dependency_errors_over_grpc(stack, embedder) -> None:
    settings, _index, registry = stack

    class Failing(LanceDbIndex):
        async def bm25(self, tenant, text, k, filters=None, *, audience=None):
            if text == "down":
                raise DependencyError("vector index", "connection refused to 10.0.0.7:9200")
            raise RuntimeError("secret internal detail /srv/db")

    failing = Failing(settings.data_dir / "lancedb", dim=embedder.dim, table="chunks_test_384")
    server, channel, stub = await _serve(GatewayDeps(settings, failing, embedder, registry))
    try:
        boom = await _error(stub.Search(pb.SearchRequest(query="x", mode=pb.MODE_BM25), metadata=A))
        down = await _error(stub.Search(pb.SearchRequest(query="down"), metadata=A))
    finally:
        await channel.close()
        await server.stop(None)
        await failing.close()
    assert boom.code() == grpc.StatusCode.INTERNAL and boom.details() == "internal error"
    assert down.code() == grpc.StatusCode.UNAVAILABLE
    assert down.details() == "vector index is unavailable; try again later"


async def test_grpc_requests_are_counted(stub) -> None:
    before = REQUESTS.labels("/grpc/Query", "GRPC", "OK")._value.get()
    await stub.Query(pb.QueryRequest(query="hotel"), metadata=A)
    assert REQUESTS.labels("/grpc/Query", "GRPC", "OK")._value.get() == before + 1
