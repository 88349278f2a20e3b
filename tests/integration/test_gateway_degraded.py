"""The gateway with its embedder service down: hybrid searches answer from BM25 with
``degraded: true`` and a count in ``datatorag_gateway_degraded_total``, ``/readyz`` stays ready
and names the embedder; a k-NN search fails (nothing to fall back to). The embedder is the real
HTTP adapter pointed at a port nothing listens on."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY

from datatorag.adapters.embedded.lancedb_index import LanceDbIndex
from datatorag.adapters.embedded.sqlite_registry import SqliteRegistry
from datatorag.config import EmbeddingSettings, Settings
from datatorag.embedding.http import HttpEmbedder
from datatorag.embedding.local import LocalEmbedder
from datatorag.gateway import GatewayDeps, create_app
from datatorag.runtime import Readiness
from tests.e2e.conftest import free_port
from tests.integration.test_gateway_rest import KEY_A, KEY_B, A, _ingest


def _degraded_count() -> float:
    return (
        REGISTRY.get_sample_value(
            "datatorag_gateway_degraded_total", {"reason": "embedder_unavailable"}
        )
        or 0.0
    )


@pytest.fixture(scope="module")
async def app(tmp_path_factory):
    root: Path = tmp_path_factory.mktemp("gateway-degraded")
    local = LocalEmbedder(EmbeddingSettings())
    index = LanceDbIndex(root / "lancedb", dim=local.dim, table="chunks_test_384")
    await index.ensure()
    registry = SqliteRegistry(root / "registry.sqlite3")
    await _ingest(index, registry, local)
    # the service the gateway learned its model from at startup, now gone
    down = HttpEmbedder(f"http://127.0.0.1:{free_port()}", timeout_s=2)
    down.model_id, down.dim = local.model_id, local.dim
    readiness = Readiness()
    readiness.add("vector_index", index.check)
    readiness.add("embedder", down.check)
    readiness.optional.add("embedder")
    deps = GatewayDeps(
        Settings(api_keys=f"{KEY_A}=acme,{KEY_B}=globex", data_dir=root),
        index,
        down,
        registry,
        readiness=readiness,
    )
    yield create_app(deps)
    await down.close()
    await registry.close()
    await index.close()


@pytest.fixture(scope="module")
async def client(app):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c:
        yield c


async def test_hybrid_search_falls_back_to_bm25_and_says_so(client) -> None:
    before = _degraded_count()
    resp = await client.post("/v1/search", headers=A, json={"query": "parental leave weeks"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["degraded"] is True
    assert body["hits"] and body["hits"][0]["citation"]["doc_id"] == "acme-leave"
    assert all(set(h["ranks"]) == {"bm25"} for h in body["hits"])
    assert _degraded_count() == before + 1
    # /v1/query too
    resp = await client.post("/v1/query", headers=A, json={"query": "parental leave"})
    assert resp.status_code == 200 and resp.json()["degraded"] is True


async def test_knn_search_has_nothing_to_fall_back_to(client) -> None:
    resp = await client.post(
        "/v1/search", headers=A, json={"query": "parental leave", "mode": "knn"}
    )
    assert resp.status_code == 503, resp.text


async def test_readyz_stays_ready_and_names_the_embedder(client) -> None:
    resp = await client.get("/readyz")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["ready"] is True and body["degraded"] == ["embedder"]
    assert body["checks"]["vector_index"] == "ok" and body["checks"]["embedder"] != "ok"


async def test_grpc_search_and_query_say_degraded_too(app) -> None:
    import grpc

    from datatorag.gateway.grpc_gen import gateway_pb2 as pb
    from datatorag.gateway.grpc_gen import gateway_pb2_grpc as pb_grpc
    from datatorag.gateway.grpc_server import grpc_server_for_app

    server, port = grpc_server_for_app(app, "127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.QueryGatewayStub(channel)
            auth = (("authorization", f"Bearer {KEY_A}"),)
            found = await stub.Search(pb.SearchRequest(query="parental leave weeks"), metadata=auth)
            assert found.degraded is True and found.hits[0].citation.doc_id == "acme-leave"
            ctx = await stub.Query(pb.QueryRequest(query="parental leave"), metadata=auth)
            assert ctx.degraded is True and ctx.citations
            with pytest.raises(grpc.aio.AioRpcError) as knn:
                await stub.Search(
                    pb.SearchRequest(query="parental leave", mode=pb.MODE_KNN), metadata=auth
                )
            assert knn.value.code() is grpc.StatusCode.UNAVAILABLE
    finally:
        await server.stop(None)


async def test_answers_without_the_embedder_are_a_clear_503(client) -> None:
    """An answer's evidence and grounding need the model: no guessing from keywords alone."""
    resp = await client.post("/v1/answer", headers=A, json={"query": "parental leave weeks"})
    assert resp.status_code == 503, resp.text
    error = resp.json()["error"]
    assert "embedder" in error["message"], error
    assert resp.headers.get("retry-after")
