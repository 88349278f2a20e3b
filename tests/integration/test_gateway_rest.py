"""The REST gateway over real adapters: the embedded LanceDB index, the SQLite registry and the
real all-MiniLM-L6-v2 embedder, driven through FastAPI's ASGI transport."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from datatorag.adapters.embedded.lancedb_index import LanceDbIndex
from datatorag.adapters.embedded.sqlite_registry import SqliteRegistry
from datatorag.config import EmbeddingSettings, Settings
from datatorag.domain.errors import DependencyError, NotFound
from datatorag.domain.models import ChunkRecord, DocumentRecord, DocumentStatus
from datatorag.embedding.local import LocalEmbedder
from datatorag.gateway import GatewayDeps, create_app

pytestmark = pytest.mark.asyncio(loop_scope="session")

KEY_A, KEY_B, KEY_R = "key-acme-123", "key-globex-456", "key-acme-reader"
A = {"Authorization": f"Bearer {KEY_A}"}
B = {"X-API-Key": KEY_B}
R = {"Authorization": f"Bearer {KEY_R}"}
# the edge's rate limits have their own tests (test_gateway_edge.py); here they stay out of the way
NO_LIMITS = {"per_s": 1e6, "burst": 1e6, "auth_failures_per_min": 1e6, "auth_failure_burst": 1e6}
OLD = datetime(2024, 1, 1, tzinfo=UTC)
NEW = datetime(2026, 6, 1, tzinfo=UTC)

# tenant -> doc_id -> (source, doc_type, title, updated_at, [(text, page)])
LEAVE_0 = (
    "Parental leave. Employees who become parents receive sixteen weeks of fully paid "
    "parental leave, to be taken within the first year after the birth or adoption."
)
LEAVE_1 = (
    "Leave can be split into two blocks. Notify your manager and HR at least four weeks "
    "before the leave starts."
)
TRAVEL_0 = (
    "Book economy class for flights under six hours. Hotel costs are reimbursed up to "
    "180 euros per night with receipts."
)
SECURITY_0 = (
    "Laptops must use full-disk encryption. Report a lost or stolen device to the "
    "security team within one hour."
)
SECURITY_1 = (
    "Project Nightingale is confidential: the codename and its budget must never be "
    "shared outside the company."
)
# tenant -> doc_id -> (source, doc_type, title, updated_at, [(text, page)])
CORPUS: dict[str, dict[str, tuple[str, str, str, datetime, list[tuple[str, int]]]]] = {
    "acme": {
        "acme-leave": ("hr", "pdf", "Parental Leave Policy", NEW, [(LEAVE_0, 1), (LEAVE_1, 2)]),
        "acme-travel": ("hr", "pdf", "Travel and Expenses", NEW, [(TRAVEL_0, 1)]),
        "acme-security": (
            "it",
            "md",
            "Information Security",
            OLD,
            [(SECURITY_0, 1), (SECURITY_1, 1)],
        ),
    },
    "globex": {
        "globex-handbook": (
            "hr",
            "pdf",
            "Globex Handbook",
            NEW,
            [
                ("Globex employees get twelve weeks of parental leave.", 3),
                ("Remote work is allowed three days per week from home.", 4),
            ],
        ),
    },
}
VERSION = "v2"


async def _ingest(index: LanceDbIndex, registry: SqliteRegistry, embedder: LocalEmbedder) -> None:
    records: list[ChunkRecord] = []
    for tenant, docs in CORPUS.items():
        for doc_id, (source, doc_type, title, updated, chunks) in docs.items():
            if doc_id == "acme-leave":  # an older version: listed in the registry, not indexed
                await registry.put_version(
                    _record(tenant, doc_id, "v1", 1, source, doc_type, title)
                )
                await registry.advance(tenant, doc_id, "v1", DocumentStatus.INDEXED, chunk_count=1)
            await registry.put_version(_record(tenant, doc_id, VERSION, 2, source, doc_type, title))
            await registry.advance(
                tenant, doc_id, VERSION, DocumentStatus.INDEXED, chunk_count=len(chunks)
            )
            vectors = await embedder.embed_documents([t for t, _ in chunks], [title] * len(chunks))
            for n, ((text, page), vec) in enumerate(zip(chunks, vectors, strict=True)):
                records.append(
                    ChunkRecord(
                        id=ChunkRecord.make_id(doc_id, VERSION, n),
                        tenant=tenant,
                        doc_id=doc_id,
                        version=VERSION,
                        chunk_index=n,
                        text=text,
                        title=title,
                        page_start=page,
                        page_end=page,
                        source=source,
                        path=f"{source}/{doc_id}.{doc_type}",
                        doc_type=doc_type,
                        updated_at=updated,
                        vector=vec.tolist(),
                    )
                )
    await index.upsert(records)
    # registry-only documents: a failure with its reason, and one stuck for two hours
    await registry.put_version(_record("acme", "acme-broken", "v1", 1, "hr", "pdf", None))
    await registry.fail(
        "acme", "acme-broken", "v1", "encrypted PDF: a password is required", code="encrypted"
    )
    stuck = _record("acme", "acme-stuck", "v1", 1, "it", "pdf", None)
    stuck.updated_at = datetime.now(UTC) - timedelta(hours=2)
    await registry.put_version(stuck)


def _record(tenant, doc_id, version, seq, source, doc_type, title) -> DocumentRecord:
    return DocumentRecord(
        tenant=tenant,
        doc_id=doc_id,
        version=version,
        seq=seq,
        source=source,
        path=f"{source}/{doc_id}.{doc_type}",
        content_hash=version * 8,
        title=title,
        doc_type=doc_type,
    )


@pytest.fixture(scope="module")
def embedder() -> LocalEmbedder:
    return LocalEmbedder(EmbeddingSettings())


@pytest.fixture(scope="module")
async def stack(tmp_path_factory, embedder):
    root: Path = tmp_path_factory.mktemp("gateway")
    settings = Settings(
        api_keys=f"{KEY_A}=acme,{KEY_B}=globex,{KEY_R}=acme",
        admin_api_keys=f"{KEY_A},{KEY_B}",
        rate_limit=NO_LIMITS,
        stalled_after_s=600,
        data_dir=root,
        max_document_bytes=1000,
    )
    index = LanceDbIndex(root / "lancedb", dim=embedder.dim, table="chunks_test_384")
    await index.ensure()
    registry = SqliteRegistry(root / "registry.sqlite3")
    await _ingest(index, registry, embedder)
    yield settings, index, registry
    await registry.close()
    await index.close()


def _client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")


@pytest.fixture(scope="module")
async def synced() -> list[tuple[str, str]]:
    return []


@pytest.fixture(scope="module")
async def client(stack, embedder, synced):
    settings, index, registry = stack

    async def on_sync(tenant: str, source_id: str):
        if source_id != "hr":
            raise NotFound(source_id)
        synced.append((tenant, source_id))
        return {"run_id": "run-1"}

    async def on_upload(tenant, filename, data, content_type, groups):
        return {
            "doc_id": f"upload-{filename}",
            "bytes": len(data),
            "tenant_seen": tenant,
            "groups": groups,
        }

    app = create_app(
        GatewayDeps(
            settings=settings,
            index=index,
            embedder=embedder,
            registry=registry,
            on_sync=on_sync,
            on_upload=on_upload,
        )
    )
    async with _client(app) as c:
        yield c


async def _search(client, headers, query, **body) -> httpx.Response:
    return await client.post("/v1/search", json={"query": query, **body}, headers=headers)


def _doc_ids(resp: httpx.Response) -> list[str]:
    assert resp.status_code == 200, resp.text
    return [h["citation"]["doc_id"] for h in resp.json()["hits"]]


# ------------------------------------------------------------------------------ search


async def test_hybrid_search_finds_the_answer_with_a_full_citation(client) -> None:
    resp = await _search(
        client, A, "How many weeks of paid parental leave do new parents get?", k=3
    )
    body = resp.json()
    assert resp.status_code == 200 and body["mode"] == "hybrid" and body["k"] == 3
    top = body["hits"][0]
    assert top["id"] == "acme-leave:v2:0"
    assert "sixteen weeks" in top["text"]
    assert set(top["ranks"]) == {"knn", "bm25"}  # found by both retrievers
    assert top["citation"] == {
        "doc_id": "acme-leave",
        "version": "v2",
        "title": "Parental Leave Policy",
        "path": "hr/acme-leave.pdf",
        "source": "hr",
        "section": None,
        "doc_type": "pdf",
        "page_start": 1,
        "page_end": 1,
        "chunk_index": 0,
        "chunk_id": "acme-leave:v2:0",
    }
    scores = [h["score"] for h in body["hits"]]
    assert scores == sorted(scores, reverse=True) and len(scores) == 3
    assert resp.headers["x-request-id"]


async def test_knn_and_bm25_modes(client) -> None:
    # paraphrase with no shared keywords: k-NN finds it
    knn = await _search(client, A, "misplaced my notebook computer", mode="knn", k=2)
    assert _doc_ids(knn)[0] == "acme-security"
    assert all(set(h["ranks"]) == {"knn"} for h in knn.json()["hits"])
    # exact rare term: BM25 finds it, and only documents containing it
    bm25 = await _search(client, A, "receipts", mode="bm25", k=5)
    assert _doc_ids(bm25) == ["acme-travel"]
    assert bm25.json()["hits"][0]["ranks"] == {"bm25": 1}


@pytest.mark.parametrize("mode", ["hybrid", "knn", "bm25"])
async def test_tenant_b_never_sees_tenant_a(client, mode) -> None:
    query = "Project Nightingale confidential codename budget"
    mine = _doc_ids(await _search(client, A, query, mode=mode, k=10))
    assert mine[0] == "acme-security"
    theirs = _doc_ids(await _search(client, B, query, mode=mode, k=10))
    assert set(theirs) <= {"globex-handbook"}
    if mode == "bm25":
        assert theirs == []  # no globex chunk contains these words
    else:
        assert len(theirs) == 2  # k-NN returns globex's own chunks, never acme's


async def test_tenant_b_cannot_read_or_list_tenant_a_documents(client) -> None:
    assert (await client.get("/v1/documents/acme-leave", headers=A)).status_code == 200
    resp = await client.get("/v1/documents/acme-leave", headers=B)
    assert resp.status_code == 404
    assert resp.json()["error"]["message"] == "document 'acme-leave' not found"
    listed = await client.get("/v1/documents", headers=B)
    assert [d["doc_id"] for d in listed.json()["documents"]] == ["globex-handbook"]


async def test_filters(client) -> None:
    q = "company policy for employees"
    only_it = _doc_ids(await _search(client, A, q, filters={"sources": ["it"]}))
    assert only_it and set(only_it) == {"acme-security"}
    md = _doc_ids(await _search(client, A, q, filters={"doc_types": ["md"]}, mode="knn"))
    assert set(md) == {"acme-security"}
    ids = _doc_ids(await _search(client, A, q, filters={"doc_ids": ["acme-travel", "nope"]}))
    assert ids == ["acme-travel"]
    recent = _doc_ids(
        await _search(client, A, q, filters={"updated_after": "2025-01-01T00:00:00Z"})
    )
    assert recent and "acme-security" not in recent
    old = _doc_ids(
        await _search(client, A, q, mode="bm25", filters={"updated_before": "2025-01-01T00:00:00"})
    )  # naive: UTC
    assert set(old) <= {"acme-security"}
    both = _doc_ids(await _search(client, A, q, filters={"sources": ["hr"], "doc_types": ["md"]}))
    assert both == []


async def test_query_returns_context_block_with_citations(client) -> None:
    resp = await client.post(
        "/v1/query",
        headers=A,
        json={"query": "parental leave weeks and notice to manager", "k": 3},
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    first = body["citations"][0]
    assert first["n"] == 1 and first["doc_id"] == "acme-leave"
    # both leave chunks were retrieved: adjacent, so merged into one cited passage
    assert first["chunk_indexes"] == [0, 1] and first["pages"] == "pp. 1–2"
    assert body["context"].startswith(
        "[1] Parental Leave Policy — pp. 1–2 — doc acme-leave — chunks 0–1\n"
    )
    assert "sixteen weeks" in body["context"] and "four weeks" in body["context"]
    assert all(f"[{c['n']}] " in body["context"] for c in body["citations"])
    assert len(body["hits"]) == 3 and body["truncated"] is False


async def test_query_context_budget(client) -> None:
    resp = await client.post(
        "/v1/query", headers=A, json={"query": "policy", "k": 5, "max_context_chars": 200}
    )
    body = resp.json()
    assert resp.status_code == 200 and len(body["context"]) <= 200 and body["truncated"]


async def test_odd_query_syntax_is_not_a_server_error(client) -> None:
    for q in ['"unbalanced AND (leave:', "*", "NOT OR AND", "ü€ 漢字 \\ / ~2 ^3", "a" * 2000]:
        for mode in ("bm25", "hybrid"):
            resp = await _search(client, A, q, mode=mode)
            assert resp.status_code == 200, (q, mode, resp.text)


# ------------------------------------------------------------------------------ documents


async def test_document_detail(client) -> None:
    body = (await client.get("/v1/documents/acme-leave", headers=A)).json()
    assert body["document"]["version"] == "v2" and body["document"]["status"] == "INDEXED"
    assert [v["version"] for v in body["versions"]] == ["v2", "v1"]
    assert [c["id"] for c in body["chunks"]] == ["acme-leave:v2:0", "acme-leave:v2:1"]
    assert body["chunks"][1]["page_start"] == 2 and "four weeks" in body["chunks"][1]["text"]
    assert body["searchable"] is True
    assert "tenant" not in body["document"] and "blob_key" not in body["document"]


async def test_document_list_states(client) -> None:
    failed = (await client.get("/v1/documents?status=FAILED", headers=A)).json()
    assert failed["count"] == 1
    doc = failed["documents"][0]
    assert doc["doc_id"] == "acme-broken"
    assert doc["reason"] == "encrypted PDF: a password is required"
    assert doc["error_code"] == "encrypted"
    stalled = (await client.get("/v1/documents?status=stalled", headers=A)).json()
    assert [d["doc_id"] for d in stalled["documents"]] == ["acme-stuck"]
    assert (await client.get("/v1/documents?status=stalled&source=hr", headers=A)).json() == {
        "count": 0,
        "documents": [],
    }
    it = (await client.get("/v1/documents?source=it", headers=A)).json()
    assert {d["doc_id"] for d in it["documents"]} == {"acme-security", "acme-stuck"}
    assert (await client.get("/v1/documents?limit=2", headers=A)).json()["count"] == 2
    everything = (await client.get("/v1/documents", headers=A)).json()
    assert everything["count"] == 5  # current versions only


async def test_sync_and_upload_hooks(client, synced) -> None:
    resp = await client.post("/v1/sources/hr/sync", headers=A)
    assert resp.status_code == 202
    assert resp.json() == {"status": "accepted", "detail": {"source": "hr", "run_id": "run-1"}}
    assert synced[-1] == ("acme", "hr")
    missing = await client.post("/v1/sources/nope/sync", headers=A)
    assert missing.status_code == 404 and "nope" in missing.json()["error"]["message"]
    up = await client.post("/v1/documents", headers=B, files={"file": ("memo.txt", b"hello")})
    assert up.status_code == 202
    assert up.json()["detail"] == {
        "doc_id": "upload-memo.txt", "bytes": 5, "tenant_seen": "globex", "groups": None,
    }  # fmt: skip
    # the audience field: comma-separated or repeated (uploads are admin-only, and an admin may
    # hand a document to any group of its tenant)
    files = {"file": ("memo.txt", b"hello")}
    mine = await client.post(
        "/v1/documents", headers=B, files=files, data={"audience": ["everyone, everyone"]}
    )
    assert mine.status_code == 202 and mine.json()["detail"]["groups"] == ["everyone"]
    theirs = await client.post("/v1/documents", headers=B, files=files, data={"audience": "hr"})
    assert theirs.status_code == 202 and theirs.json()["detail"]["groups"] == ["hr"]
    bad = await client.post("/v1/documents", headers=B, files=files, data={"audience": "a\x01b"})
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["field"] == "audience"
    big = await client.post("/v1/documents", headers=B, files={"file": ("big.txt", b"x" * 1001)})
    assert big.status_code == 413 and big.json()["error"]["code"] == "file_too_large"
    nofile = await client.post("/v1/documents", headers=B, files={"other": ("a.txt", b"x")})
    assert nofile.status_code == 422 and nofile.json()["error"]["details"][0]["field"] == "file"
    # an upload is multipart/form-data, nothing else
    form = await client.post("/v1/documents", headers=B, data={"other": "x"})
    assert form.status_code == 415 and form.json()["error"]["code"] == "unsupported_media_type"


async def test_sync_and_upload_are_admin_only(client, synced) -> None:
    before = list(synced)
    sync = await client.post("/v1/sources/hr/sync", headers=R)
    assert sync.status_code == 403 and sync.json()["error"]["code"] == "forbidden"
    up = await client.post("/v1/documents", headers=R, files={"file": ("memo.txt", b"hello")})
    assert up.status_code == 403
    assert synced == before  # nothing ran
    # a reader still reads
    assert (await _search(client, R, "parental leave")).status_code == 200


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing credentials"),
        ({"Authorization": "Bearer wrong"}, "invalid API key"),
        ({"X-API-Key": "wrong"}, "invalid API key"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "must be 'Bearer <credential>'"),
        ({"Authorization": "Bearer "}, "must be 'Bearer <credential>'"),
        ({"Authorization": f"Bearer {KEY_A}", "X-API-Key": KEY_B}, "two different credentials"),
    ],
)
async def test_auth_failures_are_401(client, headers, message) -> None:
    for method, url, body in [
        ("POST", "/v1/search", {"query": "leave"}),
        ("GET", "/v1/documents/acme-leave", None),
        ("GET", "/v1/documents", None),
    ]:
        resp = await client.request(method, url, json=body, headers=headers)
        assert resp.status_code == 401, (url, resp.text)
        assert message in resp.json()["error"]["message"]
        assert resp.json()["error"]["code"] == "unauthenticated"
        assert resp.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        ({"query": "leave", "tenant": "globex"}, "tenant", "tenant comes from the API key"),
        ({"query": "leave", "k": 0}, "k", "greater than or equal to 1"),
        ({"query": "leave", "k": 101}, "k", "less than or equal to 100"),
        ({"query": "leave", "k": "ten"}, "k", "valid integer"),
        ({"query": "leave", "k": True}, "k", "valid integer"),  # no bool as int
        ({"query": "leave", "k": "5"}, "k", "valid integer"),  # no string as int either
        ({"query": "leave", "k": 5.0}, "k", "valid integer"),
        ({"query": "leave", "mode": "semantic"}, "mode", "'hybrid', 'knn' or 'bm25'"),
        ({"query": ""}, "query", "at least 1 character"),
        ({"query": "   "}, "query", "at least 1 character"),
        ({"k": 5}, "query", "Field required"),
        ({"query": 42}, "query", "valid string"),
        ({"query": "x", "filters": {"source": ["hr"]}}, "filters.source", "unknown field"),
        ({"query": "x", "filters": {"sources": []}}, "filters.sources", "at least 1 item"),
        ({"query": "x", "filters": {"sources": "hr"}}, "filters.sources", "valid list"),
        (
            {"query": "x", "filters": {"updated_after": "yesterday"}},
            "filters.updated_after",
            "valid datetime",
        ),
        (
            {
                "query": "x",
                "filters": {"updated_after": "2026-01-02", "updated_before": "2026-01-01"},
            },
            "filters",
            "updated_after must not be later",
        ),
    ],
)
async def test_invalid_search_bodies_are_422_with_field_details(
    client, body, field, fragment
) -> None:
    resp = await client.post("/v1/search", json=body, headers=A)
    assert resp.status_code == 422, resp.text
    err = resp.json()["error"]
    assert err["code"] == "validation_error"
    assert any(d["field"] == field and fragment in d["message"] for d in err["details"]), err
    assert fragment in err["message"]  # the summary names it too
    assert err["request_id"] == resp.headers["x-request-id"]


async def test_malformed_bodies(client) -> None:
    bad_json = await client.post(
        "/v1/search",
        content=b'{"query": "leave",',
        headers={**A, "content-type": "application/json"},
    )
    assert bad_json.status_code == 422 and bad_json.json()["error"]["code"] == "validation_error"
    not_object = await client.post("/v1/search", json=["leave"], headers=A)
    assert not_object.status_code == 422
    qbad = await client.post("/v1/query", json={"query": "x", "max_context_chars": 10}, headers=A)
    assert (
        qbad.status_code == 422
        and qbad.json()["error"]["details"][0]["field"] == "max_context_chars"
    )


async def test_too_long_query_and_body_are_413(client) -> None:
    resp = await _search(client, A, "leave " * 400)  # 2400 chars > 2000
    assert resp.status_code == 413
    assert resp.json()["error"] == {
        "code": "query_too_long",
        "message": "query is 2399 characters; the limit is 2000",
        "request_id": resp.headers["x-request-id"],
    }
    huge = await client.post(
        "/v1/search",
        content=json.dumps({"query": "x" * (2 << 20)}),
        headers={**A, "content-type": "application/json"},
    )
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "too_large"


async def test_other_4xx(client) -> None:
    unknown_doc = await client.get("/v1/documents/does-not-exist", headers=A)
    assert unknown_doc.status_code == 404 and unknown_doc.json()["error"]["code"] == "not_found"
    bad_status = await client.get("/v1/documents?status=DONE", headers=A)
    assert bad_status.status_code == 422
    assert bad_status.json()["error"]["details"][0]["field"] == "query.status"
    for bad_limit in ("0", "1001", "many"):
        resp = await client.get(f"/v1/documents?limit={bad_limit}", headers=A)
        assert (
            resp.status_code == 422 and resp.json()["error"]["details"][0]["field"] == "query.limit"
        )
    route = await client.get("/v1/nothing-here", headers=A)
    assert route.status_code == 404 and route.json()["error"]["code"] == "not_found"
    method = await client.get("/v1/search", headers=A)
    assert method.status_code == 405 and method.json()["error"]["code"] == "method_not_allowed"


# ------------------------------------------------------------------------------ operations


async def test_request_id_is_echoed_or_generated(client) -> None:
    resp = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert resp.status_code == 200 and resp.headers["x-request-id"] == "abc-123"
    unsafe = await client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    assert unsafe.headers["x-request-id"] != "bad id\twith spaces"
    assert len(unsafe.headers["x-request-id"]) == 32


async def test_readyz_reports_each_dependency(client) -> None:
    resp = await client.get("/readyz")
    assert resp.status_code == 200
    assert resp.json() == {
        "ready": True,
        "checks": {"vector_index": "ok", "registry": "ok", "embedder": "ok"},
    }


async def test_readyz_fails_when_one_check_fails(stack, embedder) -> None:
    settings, index, registry = stack

    async def queue_down() -> None:
        raise DependencyError("queue", "datatorag-parse does not exist")

    app = create_app(
        GatewayDeps(
            settings,
            index,
            embedder,
            registry,
            readiness=[index.check, ("queue", queue_down), registry.check],
        )
    )
    async with _client(app) as c:
        resp = await c.get("/readyz")
    assert resp.status_code == 503
    assert resp.json() == {
        "ready": False,
        "checks": {
            "LanceDbIndex": "ok",
            "queue": "DependencyError: datatorag-parse does not exist",
            "SqliteRegistry": "ok",
        },
    }


async def test_metrics_exposes_request_retrieval_and_embed_series(client) -> None:
    await _search(client, A, "hotel costs", mode="knn")
    await _search(client, A, "hotel costs", mode="hybrid")
    text = (await client.get("/metrics")).text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }
    ok = (
        "datatorag_gateway_requests_total",
        (("method", "POST"), ("route", "/v1/search"), ("status", "200")),
    )
    assert samples[ok] >= 2
    assert (
        samples[
            (
                "datatorag_gateway_requests_total",
                (("method", "POST"), ("route", "/v1/search"), ("status", "401")),
            )
        ]
        >= 1
    )
    assert samples[("datatorag_retrieval_seconds_count", (("mode", "knn"),))] >= 1
    assert samples[("datatorag_retrieval_seconds_count", (("mode", "hybrid"),))] >= 1
    assert samples[("datatorag_query_embed_seconds_count", ())] >= 2


async def test_openapi_docs(client) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert {
        "/v1/search",
        "/v1/query",
        "/v1/documents/{doc_id}",
        "/v1/documents",
        "/v1/sources/{source_id}/sync",
    } <= set(spec["paths"])
    assert {"HTTPBearer", "APIKeyHeader"} <= set(spec["components"]["securitySchemes"])
    assert (await client.get("/docs")).status_code == 200


async def test_unconfigured_hooks_are_501(stack, embedder) -> None:
    settings, index, registry = stack
    async with _client(create_app(GatewayDeps(settings, index, embedder, registry))) as c:
        sync = await c.post("/v1/sources/hr/sync", headers=A)
        upload = await c.post("/v1/documents", headers=A, files={"file": ("a.txt", b"a")})
    assert sync.status_code == 501 and sync.json()["error"]["code"] == "not_implemented"
    assert upload.status_code == 501


async def test_unexpected_and_dependency_errors(stack, embedder) -> None:
    settings, _index, registry = stack

    class Failing(LanceDbIndex):
        async def bm25(self, tenant, text, k, filters=None, *, audience=None):
            if text == "down":
                raise DependencyError("vector index", "connection refused to 10.0.0.7:9200")
            raise RuntimeError("secret internal detail /srv/db")

    failing = Failing(settings.data_dir / "lancedb", dim=embedder.dim, table="chunks_test_384")
    async with _client(create_app(GatewayDeps(settings, failing, embedder, registry))) as c:
        boom = await _search(c, A, "anything", mode="bm25")
        down = await _search(c, A, "down", mode="hybrid")
    assert boom.status_code == 500
    assert boom.json()["error"]["message"] == "internal error"
    assert "secret" not in boom.text and boom.json()["error"]["request_id"]
    assert down.status_code == 503 and down.headers["retry-after"] == "5"
    assert down.json()["error"]["message"] == "vector index is unavailable; try again later"
    assert "10.0.0.7" not in down.text
    await failing.close()


async def test_query_batcher_shares_forward_passes_and_keeps_rows(embedder) -> None:
    import numpy as np

    from datatorag.retrieval.batching import QueryBatcher

    batcher = QueryBatcher(embedder)
    texts = [f"question {i}: how much parental leave?" for i in range(16)]
    together = await asyncio.gather(*(batcher.embed_queries([t]) for t in texts))
    assert batcher.batches <= 2  # 16 concurrent callers, at most two forward passes
    direct = await embedder.embed_queries(texts)
    np.testing.assert_allclose(np.vstack(together), direct, atol=1e-5)
    assert (await batcher.embed_queries([])).shape == (0, embedder.dim)
