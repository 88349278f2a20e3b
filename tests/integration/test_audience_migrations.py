"""Stores written before audiences keep working: a SQLite registry gains its ``groups`` column,
a LanceDB table is migrated when opened, an OpenSearch index gets ``groups`` added to its mapping
by ``ensure`` and its chunks without one count as everyone's. Every old document is
``everyone``'s, as it was."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import lancedb
import pytest

from datatorag.adapters.embedded.lancedb_index import LanceDbIndex
from datatorag.adapters.embedded.sqlite_registry import SqliteRegistry
from datatorag.adapters.opensearch import OpenSearchIndex
from datatorag.adapters.opensearch import mapping as m
from datatorag.config import OpenSearchSettings
from datatorag.domain.models import ChunkRecord
from datatorag.domain.principal import EVERYONE

pytestmark = pytest.mark.timeout(120)
STAFF = frozenset({EVERYONE})
HR_ONLY = frozenset({"hr"})


def _chunk(dim: int) -> ChunkRecord:
    return ChunkRecord(
        id="d:v1:0", tenant="acme", doc_id="d", version="v1", chunk_index=0,
        text="parental leave policy", source="s", path="d.md", vector=[1.0] + [0.0] * (dim - 1),
    )  # fmt: skip


async def test_sqlite_registry_from_before_audiences(tmp_path: Path) -> None:
    path = tmp_path / "registry.sqlite3"
    registry = SqliteRegistry(path)
    await registry.check()  # creates the current schema
    await registry.close()
    with sqlite3.connect(path) as conn:  # ... and back to the old one, with a version in it
        conn.execute("ALTER TABLE doc_versions DROP COLUMN groups")
        conn.execute(
            "INSERT INTO doc_versions (tenant, doc_id, version, seq, source, path, content_hash,"
            " status, rank, created_at, updated_at) VALUES"
            " ('acme', 'd', 'v1', 1, 's', 'd.md', 'x', 'INDEXED', 4, 0, 0)"
        )
        conn.execute("INSERT INTO doc_current VALUES ('acme', 'd', 'v1', 1)")
    registry = SqliteRegistry(path)
    try:
        record = await registry.current("acme", "d")
        assert record is not None and record.groups == (EVERYONE,)
        assert [r.doc_id for r in await registry.find(tenant="acme", audience=STAFF)] == ["d"]
        assert await registry.set_groups("acme", "d", "v1", ["hr"])
        assert await registry.find(tenant="acme", audience=STAFF) == []
    finally:
        await registry.close()


async def test_lancedb_table_from_before_audiences_is_migrated(tmp_path: Path) -> None:
    index = LanceDbIndex(tmp_path / "db", dim=8, table="chunks_old")
    await index.upsert([_chunk(8)])
    await index.close()
    db = await lancedb.connect_async(str(tmp_path / "db"))
    table = await db.open_table("chunks_old")
    for ix in await table.list_indices():
        if ix.columns == ["groups"]:
            await table.drop_index(ix.name)
    await table.drop_columns(["groups"])
    assert "groups" not in (await table.schema()).names
    table.close()
    db.close()

    index = LanceDbIndex(tmp_path / "db", dim=8, table="chunks_old")
    try:
        hits = await index.bm25("acme", "parental leave", 5, audience=STAFF)
        assert [h.chunk.groups for h in hits] == [(EVERYONE,)]
        assert await index.bm25("acme", "parental leave", 5, audience=HR_ONLY) == []
        assert await index.set_groups("acme", "d", "v1", ["hr"]) == 1
        assert len(await index.knn("acme", _chunk(8).vector or [], 5, audience=HR_ONLY)) == 1
    finally:
        await index.close()


async def test_opensearch_index_from_before_audiences(opensearch_server) -> None:  # type: ignore[no-untyped-def]
    prefix = opensearch_server.unique_prefix("mig")
    settings = OpenSearchSettings(
        url=opensearch_server.url, engine=opensearch_server.engine, index_prefix=prefix
    )
    index = OpenSearchIndex(settings, model_id="old-model", dim=8, replicas=0)
    try:
        # the index as an older release created it: no groups in the strict mapping
        body = m.index_body(
            model_id="old-model", dim=8, engine=settings.engine, ef_construction=128, m=16,
            replicas=0,
        )  # fmt: skip
        del body["mappings"]["properties"][m.GROUPS_FIELD]
        first = m.index_name(prefix, "old-model", 8, 1)
        await index.client.indices.create(index=first, body=body)
        await index.client.indices.put_alias(index=first, name=index.alias)
        source = m.to_source(_chunk(8), [1.0] + [0.0] * 7)
        del source[m.GROUPS_FIELD]
        await index.client.index(index=first, id="acme:d:v1:0", body=source, refresh=True)

        await index.ensure()  # what every service does at start
        mapping = await index.client.indices.get_mapping(index=first)
        assert m.GROUPS_FIELD in mapping[first]["mappings"]["properties"]
        vector = [1.0] + [0.0] * 7
        old = await index.knn("acme", vector, 5, audience=STAFF)
        assert [h.chunk.groups for h in old] == [(EVERYONE,)]  # no groups: everyone's
        assert await index.bm25("acme", "parental", 5, audience=HR_ONLY) == []
        assert await index.set_groups("acme", "d", "v1", ["hr"]) == 1
        assert len(await index.bm25("acme", "parental", 5, audience=HR_ONLY)) == 1
        assert await index.knn("acme", vector, 5, audience=STAFF) == []
    finally:
        with contextlib.suppress(Exception):  # this test's indices and template only
            await index.drop()
        await index.close()
