"""DELETE /v1/documents/{id}, GET /v1/sources[/{id}/runs], DELETE /v1/sources/{id} through the
REST gateway on the embedded adapters (LanceDB, SQLite, local blobs) and the production ones
(OpenSearch, DynamoDB and S3 on moto). A deleted document is never returned again by search,
query or document detail, including to queries racing the delete."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import httpx
import pytest

from datatorag.config import Settings
from datatorag.domain.keys import chunks_key
from datatorag.domain.models import ChunkRecord, DocumentRecord, DocumentStatus, utcnow
from datatorag.gateway import GatewayDeps, create_app
from datatorag.ports import RunTrigger, RunType, SourceRecord, SyncRun
from datatorag.testing.memory import HashingEmbedder
from tests.integration._stacks import KINDS, Stack, make_stack

pytestmark = pytest.mark.timeout(180)

ADMIN, READER, OTHER = "admin-key-1", "reader-key-2", "globex-key-3"
H_ADMIN = {"Authorization": f"Bearer {ADMIN}"}
H_READER = {"X-API-Key": READER}
H_OTHER = {"Authorization": f"Bearer {OTHER}"}
EMB = HashingEmbedder(64, "lifecycle-model")
TEXTS = {
    "leave": ["parental leave sixteen weeks paid", "split parental leave into two blocks"],
    "travel": ["economy flights under six hours", "hotel costs reimbursed with receipts"],
}


@pytest.fixture(params=KINDS)
async def env(request, tmp_path):
    stack = await make_stack(request.param, request, tmp_path)
    name = await stack.admin.create(EMB.model_id, EMB.dim)
    await stack.admin.promote(EMB.model_id, EMB.dim, name)
    index = stack.admin.open_serving(EMB.model_id, EMB.dim)
    settings = Settings(
        api_keys=f"{ADMIN}=acme,{READER}=acme,{OTHER}=globex",
        admin_api_keys=ADMIN,
        # racing queries burst through one key; the edge's limits are tested elsewhere
        rate_limit={"per_s": 1e6, "burst": 1e6},
    )
    deps = GatewayDeps(
        settings=settings,
        index=index,
        embedder=EMB,
        registry=stack.registry,
        blobstore=stack.blobstore,
        max_concurrent_index_queries=None,
    )
    app = create_app(deps)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        await _ingest(stack, index)
        yield stack, client, index
    await index.close()
    await stack.close()


async def _ingest(stack: Stack, index) -> None:
    records = []
    for tenant in ("acme", "globex"):  # the same doc ids in two tenants
        for doc_id, texts in TEXTS.items():
            for seq, version in ((1, "v1"), (2, "v2")):  # two versions, both with chunks
                await stack.registry.put_version(
                    DocumentRecord(
                        tenant=tenant, doc_id=doc_id, version=version, seq=seq, source="hr",
                        path=f"{doc_id}.txt", content_hash=version, title=doc_id,
                        blob_key=f"raw/{tenant}/hr/{doc_id}/{version}",
                    )
                )  # fmt: skip
                await stack.registry.advance(tenant, doc_id, version, DocumentStatus.INDEXED)
                await stack.blobstore.put(f"raw/{tenant}/hr/{doc_id}/{version}", b"raw bytes")
                await stack.blobstore.put(chunks_key(tenant, doc_id, version), b"{}")
                vectors = await EMB.embed_documents(texts)
                records += [
                    ChunkRecord(
                        id=ChunkRecord.make_id(doc_id, version, i), tenant=tenant,
                        doc_id=doc_id, version=version, chunk_index=i, text=t, title=doc_id,
                        source="hr", path=f"{doc_id}.txt", vector=vectors[i].tolist(),
                    )
                    for i, t in enumerate(texts)
                ]  # fmt: skip
    await index.upsert(records)


async def _search_ids(client: httpx.AsyncClient, headers: dict, text: str) -> set[str]:
    resp = await client.post("/v1/search", json={"query": text, "k": 20}, headers=headers)
    assert resp.status_code == 200, resp.text
    return {h["citation"]["doc_id"] for h in resp.json()["hits"]}


async def test_delete_removes_every_version_for_good_even_for_racing_queries(env) -> None:
    stack, client, index = env
    assert "leave" in await _search_ids(client, H_READER, "parental leave weeks")
    observations: list[tuple[float, bool]] = []
    stop = asyncio.Event()

    async def query_loop() -> None:
        while not stop.is_set():
            started = time.monotonic()
            found = "leave" in await _search_ids(client, H_READER, "parental leave weeks")
            observations.append((started, found))

    loops = [asyncio.create_task(query_loop()) for _ in range(4)]
    await asyncio.sleep(0.2)
    resp = await client.delete("/v1/documents/leave", headers=H_ADMIN)
    deleted_at = time.monotonic()
    await asyncio.sleep(0.5)
    stop.set()
    await asyncio.gather(*loops)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert sorted(body["versions"]) == ["v1", "v2"] and body["chunks_removed"] == 4
    assert body["blobs_removed"] == 4 and body["deleted_by"].startswith("key:")
    after = [found for started, found in observations if started >= deleted_at]
    assert after and not any(after)  # no query that started after the delete saw it
    assert any(found for started, found in observations if started < deleted_at)

    for mode in ("hybrid", "knn", "bm25"):
        resp = await client.post(
            "/v1/query", json={"query": "parental leave", "k": 10, "mode": mode}, headers=H_READER
        )
        assert "leave" not in {c["doc_id"] for c in resp.json()["citations"]}
    assert (await client.get("/v1/documents/leave", headers=H_READER)).status_code == 404
    assert await index.get_chunks("acme", "leave") == []
    for v in await stack.registry.versions("acme", "leave"):
        assert v.status is DocumentStatus.DELETED and v.metadata["deleted_by"] == body["deleted_by"]
    assert not await stack.blobstore.exists("raw/acme/hr/leave/v1")
    # the other tenant's document of the same id is untouched
    assert "leave" in await _search_ids(client, H_OTHER, "parental leave weeks")
    assert len(await index.get_chunks("globex", "leave")) == 4


async def test_delete_bad_input(env) -> None:
    _, client, _ = env
    for doc_id in ("no-such-document", "x" * 512):
        resp = await client.delete(f"/v1/documents/{doc_id}", headers=H_ADMIN)
        assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found"
    # a globex admin? globex's key is no admin: 403 before anything is looked up
    assert (await client.delete("/v1/documents/leave", headers=H_OTHER)).status_code == 403
    assert (await client.delete("/v1/documents/leave", headers=H_READER)).status_code == 403
    assert (await client.delete("/v1/documents/leave")).status_code == 401
    assert (await client.delete("/v1/documents/leave", headers=H_ADMIN)).status_code == 200
    again = await client.delete("/v1/documents/leave", headers=H_ADMIN)
    assert again.status_code == 404  # deleted: the same answer as never existing
    long = await client.delete(f"/v1/documents/{'y' * 513}", headers=H_ADMIN)
    assert long.status_code == 422


async def test_sources_and_runs_from_the_registry(env) -> None:
    stack, client, _ = env
    t0 = utcnow() - timedelta(minutes=10)
    await stack.registry.put_source(
        SourceRecord(tenant="acme", source="hr", kind="sftp", interval_s=900,
                     next_run_at=t0 + timedelta(minutes=25))
    )  # fmt: skip
    await stack.registry.put_source(SourceRecord(tenant="globex", source="secret", kind="s3"))
    await stack.registry.record_sync_run(
        SyncRun(tenant="acme", source="hr", run_id="r1", started_at=t0, finished_at=t0,
                status="ok", type=RunType.BATCH, counts={"seen": 2, "new": 2})
    )  # fmt: skip
    await stack.registry.record_sync_run(
        SyncRun(tenant="acme", source="hr", run_id="r2", started_at=t0 + timedelta(minutes=5),
                status="failed", error="login refused", trigger=RunTrigger.USER,
                errors=[{"path": "leave.txt", "doc_id": "leave", "code": "encrypted",
                         "reason": "password"},
                        {"path": "payroll/salaries.xlsx", "doc_id": "pay", "code": "too_large",
                         "reason": "over 100 MB"},
                        {"path": "unplaced.pdf", "code": "fetch_failed", "reason": "gone"}])
    )  # fmt: skip
    # a failed document only the payroll group may see
    await stack.registry.put_version(
        DocumentRecord(tenant="acme", doc_id="pay", version="failed-1", seq=1, source="hr",
                       path="payroll/salaries.xlsx", content_hash="x", groups=("payroll",))
    )  # fmt: skip
    await stack.registry.advance("acme", "pay", "failed-1", DocumentStatus.FAILED, reason="big")
    resp = await client.get("/v1/sources", headers=H_READER)
    assert resp.status_code == 200
    [src] = resp.json()["sources"]
    assert (src["source"], src["kind"], src["interval_s"]) == ("hr", "sftp", 900)
    assert src["next_run_at"] and src["last_run"]["run_id"] == "r2"
    assert src["last_run"]["status"] == "failed" and src["last_run"]["trigger"] == "USER"
    assert src["documents"] == {"INDEXED": 2}
    assert 590 <= src["lag_s"] <= 700  # since the start of the last ok run

    runs = (await client.get("/v1/sources/hr/runs", headers=H_READER)).json()
    assert [r["run_id"] for r in runs["runs"]] == ["r2", "r1"]
    assert runs["runs"][1]["type"] == "BATCH" and runs["runs"][1]["counts"]["seen"] == 2
    # the reader sees the failure of a document it may see, not the payroll one's path
    assert [e["doc_id"] for e in runs["runs"][0]["errors"]] == ["leave"]
    assert runs["runs"][0]["errors"][0]["code"] == "encrypted"
    assert "salaries" not in str(runs)
    full = (await client.get("/v1/sources/hr/runs", headers=H_ADMIN)).json()
    assert [e["code"] for e in full["runs"][0]["errors"]] == [
        "encrypted",
        "too_large",
        "fetch_failed",
    ]
    # another tenant's source is not there; nor is an unknown one
    for path in ("/v1/sources/secret/runs", "/v1/sources/nope/runs", "/v1/sources/secret"):
        assert (await client.get(path, headers=H_READER)).status_code == 404

    # deleting the source purges its documents and stops its schedule (the record says so)
    assert (await client.delete("/v1/sources/hr", headers=H_READER)).status_code == 403
    resp = await client.delete("/v1/sources/hr", headers=H_ADMIN)
    assert resp.status_code == 200 and resp.json()["documents"] == 3  # with the payroll one
    assert await _search_ids(client, H_READER, "parental leave hotel flights") == set()
    record = await stack.registry.get_source("acme", "hr")
    assert record is not None and record.deleted_at is not None and not record.enabled
    assert (await client.delete("/v1/sources/hr", headers=H_ADMIN)).status_code == 404
    assert (await client.get("/v1/sources/hr", headers=H_READER)).json()["deleted_at"]


async def test_admin_reindex_is_501_without_an_in_process_reindex(env) -> None:
    _, client, _ = env
    resp = await client.post("/v1/admin/reindex", json={"model_dir": "/x"}, headers=H_ADMIN)
    assert resp.status_code == 501 and "datatorag reindex" in resp.json()["error"]["message"]
    assert (await client.get("/v1/admin/reindex", headers=H_READER)).status_code == 403
