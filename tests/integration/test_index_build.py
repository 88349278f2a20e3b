"""Reindex (a new model) and rebuild (stored vectors) blue/green, on the embedded adapters and
on the production ones (DynamoDB + S3 on moto, the real OpenSearch): the serving index is never
touched until the swap, a crash resumes, a cancel drops only the build, the embedding cache
makes a second reindex embed nothing, a rebuild embeds nothing at all."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from datatorag.domain.keys import chunks_key, records_key
from datatorag.domain.models import Chunk, DocumentRecord, DocumentStatus, utcnow
from datatorag.embedding.cached import CachedEmbedder
from datatorag.pipeline.index_build import (
    BuildProgress,
    FreshVectors,
    IndexBuilder,
    Retired,
    StoredVectors,
    checkpoint_key,
    drop_retired,
    load_retired,
)
from datatorag.pipeline.payloads import ChunkSet, DocumentMeta, EmbeddedChunkSet
from datatorag.testing.memory import HashingEmbedder
from tests.integration._stacks import KINDS, Stack, make_stack

pytestmark = pytest.mark.timeout(180)

TENANTS = ("acme", "globex")
DOCS = {  # doc_id -> chunk texts
    "leave": ["sixteen weeks of parental leave", "notify your manager four weeks ahead"],
    "travel": ["economy class under six hours", "hotels up to 180 euros a night"],
    "security": ["full disk encryption on laptops", "report a lost device within an hour"],
    "holidays": ["eleven public holidays", "floating holiday of your choice"],
    "benefits": ["dental and vision cover", "gym allowance of 40 euros"],
}
OLD = HashingEmbedder(16, "old-model")
N_CHUNKS = len(TENANTS) * sum(len(c) for c in DOCS.values())


class Crash(Exception):
    pass


@pytest.fixture(params=KINDS)
async def stack(request, tmp_path):
    s = await make_stack(request.param, request, tmp_path)
    yield s
    await s.close()


async def _ingest(stack: Stack) -> str:
    """What the pipeline leaves behind for the old model: registry records, chunk sets, embedded
    records, and the old model's serving index."""
    target = await stack.admin.create(OLD.model_id, OLD.dim)
    index = stack.admin.open(target, OLD.dim)
    for tenant in TENANTS:
        for doc_id, texts in DOCS.items():
            version = f"v-{doc_id}"
            await stack.registry.put_version(
                DocumentRecord(
                    tenant=tenant, doc_id=doc_id, version=version, seq=1, source="hr",
                    path=f"{doc_id}.txt", content_hash="h", title=doc_id.title(),
                )
            )  # fmt: skip
            await stack.registry.advance(tenant, doc_id, version, DocumentStatus.INDEXED)
            cs = ChunkSet(  # each tenant's own wording (equal texts would share cached vectors)
                doc=DocumentMeta(title=doc_id.title(), source="hr", path=f"{doc_id}.txt"),
                chunks=[Chunk(index=i, text=f"{t}, {tenant} policy") for i, t in enumerate(texts)],
            )
            await stack.blobstore.put(
                chunks_key(tenant, doc_id, version), cs.model_dump_json().encode()
            )
            vectors = await OLD.embed_documents(
                [c.text for c in cs.chunks], [cs.doc.title] * len(texts)
            )
            emb = EmbeddedChunkSet.build(cs, vectors, OLD.model_id)
            await stack.blobstore.put(
                records_key(tenant, doc_id, version, OLD.model_id), emb.model_dump_json().encode()
            )
            await index.upsert(emb.records(tenant, doc_id, version, utcnow(), ("everyone",)))
    await index.close()
    await stack.admin.promote(OLD.model_id, OLD.dim, target)
    return target


async def _serving_count(stack: Stack, model_id: str, dim: int) -> int:
    if await stack.admin.serving(model_id, dim) is None:
        return -1
    index = stack.admin.open_serving(model_id, dim)
    try:
        return await index.count()
    finally:
        await index.close()


def _builder(stack: Stack, new: CachedEmbedder, **kw) -> IndexBuilder:
    return IndexBuilder(
        registry=stack.registry,
        blobstore=stack.blobstore,
        admin=stack.admin,
        vectors=FreshVectors(stack.blobstore, new),
        docs_per_batch=2,
        checkpoint_every=2,
        **kw,
    )


async def test_reindex_builds_beside_the_old_index_swaps_and_caches(stack: Stack) -> None:
    old_index = await _ingest(stack)
    new = CachedEmbedder(HashingEmbedder(24, "new-model"), stack.cache)
    seen_during: list[tuple[int, int]] = []

    def watch(p: BuildProgress) -> None:
        seen_during.append((p.documents_done, p.documents_total))

    builder = _builder(stack, new, on_progress=watch)
    retire = [
        Retired(
            name=old_index,
            model_id=OLD.model_id,
            dim=OLD.dim,
            drop_after=utcnow(),
            model_change=True,
        )
    ]
    progress = await builder.run(retire_also=retire, grace=timedelta(hours=1))
    assert progress.state == "done" and progress.chunks == N_CHUNKS
    assert progress.embedded == N_CHUNKS and progress.reused == 0
    assert seen_during[-1] == (10, 10) and any(0 < d < 10 for d, _ in seen_during)
    # the new model serves every chunk; the old index still serves, retired with a grace period
    assert await _serving_count(stack, "new-model", 24) == N_CHUNKS
    assert await _serving_count(stack, OLD.model_id, OLD.dim) == N_CHUNKS
    index = stack.admin.open_serving("new-model", 24)
    try:
        query = (await new.inner.embed_queries(["gym allowance euros"]))[0]
        hits = await index.knn("globex", query.tolist(), 3)
        assert hits[0].chunk.doc_id == "benefits" and hits[0].chunk.tenant == "globex"
    finally:
        await index.close()
    retired = await load_retired(stack.blobstore)
    assert [r.name for r in retired] == [old_index]
    assert retired[0].drop_after > utcnow() + timedelta(minutes=59)
    assert await drop_retired(stack.blobstore, stack.admin) == []  # grace not over
    later = utcnow() + timedelta(hours=2)
    assert await drop_retired(stack.blobstore, stack.admin, now=later) == [old_index]
    assert await _serving_count(stack, OLD.model_id, OLD.dim) == -1

    # again (a warm cache): a new build, nothing embedded
    first_target = await stack.admin.serving("new-model", 24)
    again = await _builder(stack, new).run()
    assert again.embedded == 0 and again.reused == N_CHUNKS
    assert await stack.admin.serving("new-model", 24) != first_target
    assert await _serving_count(stack, "new-model", 24) == N_CHUNKS


async def test_a_crashed_reindex_resumes_and_a_cancel_drops_only_the_build(stack: Stack) -> None:
    await _ingest(stack)
    new = CachedEmbedder(HashingEmbedder(24, "new-model"), stack.cache)

    def crash_after_first_batches(p: BuildProgress) -> None:
        if p.documents_done >= 4:
            raise Crash("the process died")

    with pytest.raises(Crash):
        await _builder(stack, new, on_progress=crash_after_first_batches).run()
    checkpoint = await _builder(stack, new).load_checkpoint()
    assert checkpoint is not None and len(checkpoint.done) == 4
    assert await stack.admin.serving("new-model", 24) is None  # nothing swapped
    assert await _serving_count(stack, OLD.model_id, OLD.dim) == N_CHUNKS

    embedded_before = new.misses
    resumed = await _builder(stack, new).run()
    assert resumed.state == "done" and resumed.documents_total == 10
    assert new.misses - embedded_before == N_CHUNKS - 8  # the first 4 documents were done
    assert await stack.admin.serving("new-model", 24) == checkpoint.target
    assert await _serving_count(stack, "new-model", 24) == N_CHUNKS
    assert not await stack.blobstore.exists(checkpoint_key("new-model", 24))

    # a third model: crash, then cancel: its build is dropped, the serving indexes are as before
    third = CachedEmbedder(HashingEmbedder(32, "third-model"), stack.cache)
    with pytest.raises(Crash):
        await _builder(stack, third, on_progress=crash_after_first_batches).run()
    dropped = await _builder(stack, third).cancel_build()
    assert dropped is not None
    assert await stack.admin.list("third-model", 32) == []
    assert await _serving_count(stack, "new-model", 24) == N_CHUNKS
    assert await _serving_count(stack, OLD.model_id, OLD.dim) == N_CHUNKS


async def test_documents_deleted_or_changed_during_a_build_are_right_in_the_new_index(
    stack: Stack,
) -> None:
    await _ingest(stack)
    new = CachedEmbedder(HashingEmbedder(24, "new-model"), stack.cache)
    changed = False

    async def meanwhile() -> None:
        await stack.registry.advance("acme", "leave", "v-leave", DocumentStatus.DELETED)

    def during(p: BuildProgress) -> None:
        nonlocal changed
        if p.documents_done >= 6 and not changed:
            changed = True
            pending.append(meanwhile())

    pending: list = []
    builder = _builder(stack, new, on_progress=during)
    original = builder._indexed

    async def indexed_after_changes():
        while pending:
            await pending.pop()
        return await original()

    builder._indexed = indexed_after_changes  # type: ignore[method-assign]
    await builder.run()
    index = stack.admin.open_serving("new-model", 24)
    try:
        assert await index.get_chunks("acme", "leave") == []  # deleted meanwhile: not served
        assert len(await index.get_chunks("globex", "leave")) == 2
        assert await index.count() == N_CHUNKS - 2
    finally:
        await index.close()


async def test_rebuild_recreates_a_lost_index_from_stored_vectors_without_a_model(
    stack: Stack, tmp_path, request
) -> None:
    await _ingest(stack)
    # the index is lost: a fresh cluster prefix / directory, the same registry and blobs
    lost = await make_stack(stack.kind, request, tmp_path / "after-disaster")
    lost.registry, lost.blobstore = stack.registry, stack.blobstore
    try:
        assert await lost.admin.serving(OLD.model_id, OLD.dim) is None
        await stack.blobstore.delete(records_key("globex", "travel", "v-travel", OLD.model_id))
        builder = IndexBuilder(
            registry=lost.registry,
            blobstore=lost.blobstore,
            admin=lost.admin,
            vectors=StoredVectors(lost.blobstore, OLD.model_id, OLD.dim),
        )
        progress = await builder.run()
        assert progress.embedded == 0 and progress.reused == N_CHUNKS - 2
        assert progress.missing == ["globex/travel/v-travel"]
        assert await _serving_count(lost, OLD.model_id, OLD.dim) == N_CHUNKS - 2
        index = lost.admin.open_serving(OLD.model_id, OLD.dim)
        try:
            query = (await OLD.embed_queries(["parental leave weeks"]))[0]
            hits = await index.knn("acme", query.tolist(), 2)
            assert hits[0].chunk.doc_id == "leave"
            got = {h.chunk.id: h for h in await index.knn("acme", query.tolist(), 20)}
            text = f"{DOCS['leave'][0]}, acme policy"
            expected = (await OLD.embed_documents([text], ["Leave"]))[0]
            assert np.isclose(
                got["leave:v-leave:0"].score, float(np.dot(query, expected)), atol=1e-4
            )
        finally:
            await index.close()
    finally:
        await lost.admin.close()
        await lost.cache.close()
