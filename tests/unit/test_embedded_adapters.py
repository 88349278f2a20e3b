"""Embedded adapters beyond the port contracts: blob key safety, persistence across reopen,
conditional updates across processes, and LanceDB's full-text index upkeep."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest

from datatorag.adapters.embedded.lancedb_index import LanceDbIndex
from datatorag.adapters.embedded.local_blobstore import LocalBlobStore, validate_key
from datatorag.adapters.embedded.sqlite_registry import SqliteRegistry
from datatorag.domain.errors import DependencyError
from datatorag.domain.models import ChunkRecord, DocumentRecord, DocumentStatus

pytestmark = pytest.mark.timeout(90)
ROOT = Path(__file__).resolve().parents[2]


# -- local blob store ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "key",
    ["", "../escape", "a/../../escape", "/etc/passwd", "a\x00b", "a//b", "a/./b", "a/", "a\\b",
     ".meta/x", ".tmp/x", "x" * 1025],
)  # fmt: skip
async def test_unsafe_blob_keys_are_rejected(tmp_path: Path, key: str) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    with pytest.raises(ValueError):
        validate_key(key)
    with pytest.raises(ValueError):
        await store.put(key, b"x")
    with pytest.raises(ValueError):
        await store.get(key)
    assert not (tmp_path / "escape").exists()


async def test_blob_keys_may_hold_ordinary_punctuation(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    key = "raw/acme/ftp/doc-1/a b,c=d+e@f..g.json"
    await store.put(key, b"ok")
    assert await store.get(key) == b"ok"
    assert (tmp_path / "blobs" / "raw/acme/ftp/doc-1/a b,c=d+e@f..g.json").read_bytes() == b"ok"


async def test_blob_sidecars_and_temp_files_are_not_listed(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    await store.put("a/b", b"1", metadata={"k": "v"}, content_type="text/plain")
    await store.put("c", b"2", metadata={"k": "v"})
    assert [k async for k in store.list()] == ["a/b", "c"]
    assert [k async for k in store.list(".meta/")] == []
    assert json.loads((tmp_path / "blobs/.meta/a/b").read_text())["metadata"] == {"k": "v"}
    assert list((tmp_path / "blobs/.tmp").iterdir()) == []  # nothing left behind


async def test_bad_metadata_is_rejected(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    for meta in ({"Upper": "v"}, {"k": "non-ascii é"}, {"k": 1}):
        with pytest.raises(ValueError):
            await store.put("k", b"x", metadata=meta)  # type: ignore[arg-type]
    assert not await store.exists("k")


async def test_a_key_cannot_nest_under_an_object(tmp_path: Path) -> None:
    # A filesystem limit S3 does not have; the error says so instead of an OSError.
    store = LocalBlobStore(tmp_path / "blobs")
    await store.put("a", b"file")
    with pytest.raises(ValueError, match="nests under"):
        await store.put("a/b", b"x")
    await store.put("d/e", b"x")
    with pytest.raises(ValueError, match="prefix"):
        await store.put("d", b"x")


async def test_blobstore_check_fails_when_root_is_gone(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    await store.check()
    shutil.rmtree(tmp_path / "blobs")
    with pytest.raises(DependencyError):
        await store.check()


# -- SQLite registry -------------------------------------------------------------------------
def _doc(version: str = "v1", seq: int = 1) -> DocumentRecord:
    return DocumentRecord(
        tenant="acme", doc_id="d", version=version, seq=seq, source="ftp", path="/a.pdf",
        content_hash="0" * 64,
    )  # fmt: skip


async def test_registry_persists_across_reopen(tmp_path: Path) -> None:
    reg = SqliteRegistry(tmp_path / "reg.db")
    await reg.put_version(_doc())
    await reg.advance("acme", "d", "v1", DocumentStatus.INDEXED, chunk_count=5)
    await reg.close()
    reg = SqliteRegistry(tmp_path / "reg.db")
    try:
        got = await reg.current("acme", "d")
        assert got is not None and got.status is DocumentStatus.INDEXED and got.chunk_count == 5
    finally:
        await reg.close()


async def test_registry_rejects_unknown_or_ill_typed_fields(tmp_path: Path) -> None:
    reg = SqliteRegistry(tmp_path / "reg.db")
    try:
        await reg.put_version(_doc())
        with pytest.raises(ValueError, match="cannot set"):
            await reg.advance("acme", "d", "v1", DocumentStatus.PARSED, seq=99)
        with pytest.raises(ValueError):
            await reg.advance("acme", "d", "v1", DocumentStatus.PARSED, chunk_count="many")
        assert (await reg.get("acme", "d", "v1")).status is DocumentStatus.FETCHED
    finally:
        await reg.close()


async def test_registry_conditional_updates_hold_across_processes(tmp_path: Path) -> None:
    db = tmp_path / "reg.db"
    reg = SqliteRegistry(db)
    await reg.put_version(_doc())
    await reg.close()
    script = textwrap.dedent(
        """
        import asyncio, json, sys
        from datatorag.adapters.embedded.sqlite_registry import SqliteRegistry
        from datatorag.domain.models import DocumentStatus
        async def main():
            reg = SqliteRegistry(sys.argv[1])
            parsed = await reg.advance("acme", "d", "v1", DocumentStatus.PARSED)
            lease = await reg.acquire_lease("connector:ftp", sys.argv[2], 60)
            await reg.close()
            print(json.dumps([parsed, lease]))
        asyncio.run(main())
        """
    )
    procs = [
        subprocess.Popen(  # noqa: ASYNC220 - started at once, awaited below in threads
            [sys.executable, "-c", script, str(db), f"owner-{i}"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    results = []
    for p in procs:
        out, err = await asyncio.to_thread(p.communicate, timeout=60)
        assert p.returncode == 0, err
        results.append(json.loads(out))
    assert [r[0] for r in results].count(True) == 1  # one process advanced the status
    assert [r[1] for r in results].count(True) == 1  # one process holds the lease


# -- LanceDB ---------------------------------------------------------------------------------
DIM = 8


def _chunks(doc: str, n: int, text: str, tenant: str = "acme") -> list[ChunkRecord]:
    rng = np.random.default_rng(zlib.crc32(doc.encode()))
    out = []
    for i in range(n):
        v = rng.normal(size=DIM)
        out.append(
            ChunkRecord(
                id=ChunkRecord.make_id(doc, "v1", i),
                tenant=tenant,
                doc_id=doc,
                version="v1",
                chunk_index=i,
                text=f"{text} {i}",
                source="ftp",
                path=f"/{doc}",
                vector=(v / np.linalg.norm(v)).tolist(),
            )
        )
    return out


async def _fts_unindexed(index: LanceDbIndex) -> int:
    table = await index._tbl()
    total = 0
    for ix in await table.list_indices():
        if ix.index_type == "FTS":
            total += (await table.index_stats(ix.name)).num_unindexed_rows
    return total


async def test_lancedb_persists_across_reopen(tmp_path: Path) -> None:
    index = LanceDbIndex(tmp_path / "ldb", dim=DIM)
    await index.upsert(_chunks("d", 3, "persistent giraffe"))
    await index.close()
    index = LanceDbIndex(tmp_path / "ldb", dim=DIM)
    try:
        assert await index.count("acme") == 3
        assert len(await index.bm25("acme", "giraffe", 10)) == 3
    finally:
        await index.close()


async def test_lancedb_refuses_a_table_of_another_dimension(tmp_path: Path) -> None:
    index = LanceDbIndex(tmp_path / "ldb", dim=DIM)
    await index.ensure()
    await index.close()
    with pytest.raises(DependencyError, match="dim 16"):
        await LanceDbIndex(tmp_path / "ldb", dim=16).ensure()


async def test_lancedb_fts_stays_fresh_before_and_after_optimize(tmp_path: Path) -> None:
    index = LanceDbIndex(tmp_path / "ldb", dim=DIM, optimize_every_rows=10**9)
    try:
        await index.upsert(_chunks("a", 5, "okapi savanna"))
        assert await _fts_unindexed(index) > 0  # searched by flat scan until optimized
        assert len(await index.bm25("acme", "okapi", 10)) == 5
        await index.optimize()
        assert await _fts_unindexed(index) == 0
        await index.upsert(_chunks("b", 2, "okapi jungle"))  # after the index was built
        assert {h.chunk.doc_id for h in await index.bm25("acme", "jungle", 10)} == {"b"}
        assert len(await index.bm25("acme", "okapi", 10)) == 7
        # replaced rows are no longer found by their old text, indexed or not
        await index.upsert([c.model_copy(update={"text": "renamed"}) for c in _chunks("a", 5, "")])
        assert {h.chunk.doc_id for h in await index.bm25("acme", "savanna", 10)} == set()
    finally:
        await index.close()


async def test_lancedb_optimizes_by_itself_after_enough_writes(tmp_path: Path) -> None:
    index = LanceDbIndex(tmp_path / "ldb", dim=DIM, optimize_every_rows=6)
    try:
        await index.upsert(_chunks("a", 4, "tapir"))
        assert await _fts_unindexed(index) > 0
        await index.upsert(_chunks("b", 4, "tapir"))  # 8 rows written: optimize runs
        assert await _fts_unindexed(index) == 0
        assert len(await index.bm25("acme", "tapir", 10)) == 8
    finally:
        await index.close()


async def test_lancedb_second_handle_sees_writes_at_once(tmp_path: Path) -> None:
    # The indexer and the query gateway may hold separate handles (separate processes).
    writer = LanceDbIndex(tmp_path / "ldb", dim=DIM)
    reader = LanceDbIndex(tmp_path / "ldb", dim=DIM)
    try:
        await writer.ensure()
        assert await reader.count("acme") == 0
        await writer.upsert(_chunks("a", 3, "narwhal"))
        assert await reader.count("acme") == 3
        assert len(await reader.bm25("acme", "narwhal", 5)) == 3
        await writer.delete_document("acme", "a")
        assert await reader.count("acme") == 0
    finally:
        await writer.close()
        await reader.close()


def _cluster(doc: str, tenant: str, centre: int, n: int, sign: float = 1.0) -> list[ChunkRecord]:
    """``n`` chunks whose vectors lie close to ``sign * e[centre]``."""
    rng = np.random.default_rng(zlib.crc32(doc.encode()))
    base = np.zeros(DIM)
    base[centre] = sign
    vectors = base + 0.05 * rng.normal(size=(n, DIM))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return [
        ChunkRecord(
            id=ChunkRecord.make_id(doc, "v1", i),
            tenant=tenant,
            doc_id=doc,
            version="v1",
            chunk_index=i,
            text=f"{doc} {i}",
            source="ftp",
            path=f"/{doc}",
            vector=v.tolist(),
        )
        for i, v in enumerate(vectors)
    ]


async def test_lancedb_ann_index_keeps_k_hits_under_a_narrow_filter(tmp_path: Path) -> None:
    index = LanceDbIndex(
        tmp_path / "ldb",
        dim=DIM,
        ann_min_rows=1000,
        nprobes=1,
        ann_partition_rows=75,  # 16 partitions
        optimize_every_rows=10**9,
    )
    try:
        big = [
            c
            for d, centre in (("b0", 0), ("b2", 2), ("b3", 3))
            for c in _cluster(d, "big", centre, 300)
        ]
        small = _cluster("s1", "small", 1, 300)
        await index.upsert(big)
        await index.upsert(small)
        await index.optimize()
        table = await index._tbl()
        kinds = {(tuple(ix.columns), ix.index_type) for ix in await table.list_indices()}
        assert (("vector",), "IvfFlat") in kinds
        assert (("tenant",), "Bitmap") in kinds
        # The query sits in a "big" cluster, so the partition probed first holds no "small" row:
        # the search must probe further to return k hits (with one probe it finds none).
        query = big[0].vector
        hits = await index.knn("small", query, 10)
        assert len(hits) == 10 and {h.chunk.tenant for h in hits} == {"small"}
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=True)
        # Approximate once indexed (with nprobes=1 here, recall is low by design): every hit is a
        # real "small" row whose score is its true cosine similarity.
        by_id = {c.id: c for c in small}
        for h in hits:
            assert abs(h.score - float(np.dot(by_id[h.chunk.id].vector, query))) < 1e-5
        got = await index.knn("big", query, 5)
        assert got[0].chunk.id == big[0].id
        assert abs(got[0].score - 1.0) < 1e-5  # cosine similarity of the vector with itself
    finally:
        await index.close()


async def test_lancedb_retrains_the_ann_index_instead_of_piling_up_segments(
    tmp_path: Path,
) -> None:
    # Every optimize folds new rows in as one more index segment, and every segment is probed
    # on every query: past max_ann_segments the index is retrained whole, with ~sqrt(n) parts.
    index = LanceDbIndex(
        tmp_path / "ldb",
        dim=DIM,
        ann_min_rows=400,
        max_ann_segments=1,
        optimize_every_rows=10**9,
    )
    try:
        segments = []
        for b in range(6):
            await index.upsert(_cluster(f"d{b}", "acme", b % DIM, 200))
            await index.optimize()
            table = await index._tbl()
            stats = await table.index_stats("vector_idx")
            segments.append(stats.num_indices if stats else 0)
        # none below 400 rows, then always one (Lance alone would be at 3 segments by 1200 rows)
        assert segments == [0, 1, 1, 1, 1, 1]
        assert (await table.index_stats("vector_idx")).num_unindexed_rows == 0
        # the partition size survives optimize (given a partition count instead, Lance
        # re-partitions to ~10k-row partitions, i.e. one here, and every probe scans everything)
        plan = await (
            table.query()
            .nearest_to(_cluster("q", "acme", 0, 1)[0].vector)
            .maximum_nprobes(0)
            .minimum_nprobes(10_000)
            .limit(1)
            .analyze_plan()
        )
        ranked = [int(n) for n in re.findall(r"partitions_ranked=(\d+)", plan)]
        assert ranked and min(ranked) >= 4, plan  # 1200 rows in partitions of 256 rows
        hits = await index.knn("acme", _cluster("d5", "acme", 5, 1)[0].vector, 5)
        assert {h.chunk.doc_id for h in hits} == {"d5"}
    finally:
        await index.close()


async def test_lancedb_every_row_stays_findable_through_appends_and_retrains(
    tmp_path: Path,
) -> None:
    # Rows folded into the IVF index by optimize() and rows of a retrained index must all be
    # reachable: each row's own vector finds it first when every partition is probed.
    rng = np.random.default_rng(7)
    index = LanceDbIndex(
        tmp_path / "ldb", dim=DIM, ann_min_rows=300, optimize_every_rows=10**9, nprobes=10_000
    )
    try:
        everything: list[ChunkRecord] = []
        for b in range(7):
            vectors = rng.normal(size=(150, DIM))
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            batch = [
                ChunkRecord(
                    id=ChunkRecord.make_id(f"d{b}", "v1", i),
                    tenant="acme",
                    doc_id=f"d{b}",
                    version="v1",
                    chunk_index=i,
                    text=f"d{b} {i}",
                    source="ftp",
                    path=f"/d{b}",
                    vector=v.tolist(),
                )
                for i, v in enumerate(vectors)
            ]
            everything += batch
            await index.upsert(batch)
            await index.optimize()
            older = [everything[i] for i in rng.choice(len(everything), 40, replace=False)]
            for rec in batch[::3] + older:
                hits = await index.knn("acme", rec.vector, 1)
                assert [h.chunk.id for h in hits] == [rec.id], (b, rec.id)
        stats = await (await index._tbl()).index_stats("vector_idx")
        assert stats is not None and stats.num_unindexed_rows == 0  # the ANN path was tested
    finally:
        await index.close()


async def test_lancedb_migrates_a_table_written_without_the_payload_column(
    tmp_path: Path,
) -> None:
    import lancedb

    chunks = _chunks("old", 4, "wombat burrow")
    current = LanceDbIndex(tmp_path / "scratch", dim=DIM)._to_arrow(chunks)
    old = current.drop_columns(["payload"])  # the layout before the payload column
    db = await lancedb.connect_async(str(tmp_path / "ldb"))
    await db.create_table("chunks", old)
    db.close()

    index = LanceDbIndex(tmp_path / "ldb", dim=DIM)
    try:
        table = await index._tbl()
        assert "payload" in (await table.schema()).names
        assert await index.count("acme") == 4
        got = await index.get_chunks("acme", "old")
        assert [c.model_dump(exclude={"vector"}) for c in got] == [
            c.model_dump(exclude={"vector"}) for c in chunks
        ]
        assert len(await index.bm25("acme", "wombat", 10)) == 4  # full text rebuilt
        assert (await index.knn("acme", chunks[2].vector, 1))[0].chunk.id == chunks[2].id
    finally:
        await index.close()
