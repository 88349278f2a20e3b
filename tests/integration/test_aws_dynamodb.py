"""DynamoDbRegistry against a real moto server: conditional writes under races, stale versions,
the operator index, the crash-between-writes repair, health checks."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from datatorag.adapters.aws.dynamodb_registry import (
    STATUS_INDEX,
    TIME_INDEX,
    DynamoDbRegistry,
    _record_item,
)
from datatorag.adapters.aws.provision import ensure_table
from datatorag.adapters.aws.session import AwsClients
from datatorag.domain.errors import DependencyError
from datatorag.domain.models import DocumentRecord
from datatorag.domain.models import DocumentStatus as S

pytestmark = [pytest.mark.aws, pytest.mark.timeout(90)]


@pytest.fixture
async def clients(moto_server) -> AsyncIterator[AwsClients]:
    clients = moto_server.clients()
    yield clients
    await clients.close()


@pytest.fixture
async def registry(clients: AwsClients) -> DynamoDbRegistry:
    table = f"it-{uuid.uuid4().hex[:16]}"
    await ensure_table(clients, table)
    return DynamoDbRegistry(table, clients=clients)


def _record(doc_id: str = "doc", version: str = "v1", seq: int = 1, **kw: Any) -> DocumentRecord:
    return DocumentRecord(
        tenant="acme",
        doc_id=doc_id,
        version=version,
        seq=seq,
        source="ftp",
        path=f"/in/{doc_id}.pdf",
        content_hash="0" * 64,
        **kw,
    )


async def _calls(clients: AwsClients, operation: str) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    ddb = await clients.client("dynamodb")
    ddb.meta.events.register(
        f"provide-client-params.dynamodb.{operation}",
        lambda params, **_: seen.append(dict(params)),
    )
    return seen


async def test_racing_advances_never_move_a_status_backwards(registry: DynamoDbRegistry) -> None:
    for i in range(8):
        doc = f"race-{i}"
        await registry.put_version(_record(doc))
        observed: list[S] = []
        done = asyncio.Event()

        async def watch(doc: str, observed: list[S], done: asyncio.Event) -> None:
            while not done.is_set():
                observed.append((await registry.get("acme", doc, "v1")).status)

        watcher = asyncio.create_task(watch(doc, observed, done))
        contenders = [S.PARSED, S.INDEXED, S.EMBEDDED]
        random.shuffle(contenders)
        results = dict(
            zip(
                contenders,
                await asyncio.gather(
                    *(
                        registry.advance("acme", doc, "v1", s, chunk_count=s.rank)
                        for s in contenders
                    )
                ),
                strict=True,
            )
        )
        done.set()
        await watcher

        final = await registry.get("acme", doc, "v1")
        assert final.status is S.INDEXED and final.chunk_count == S.INDEXED.rank
        assert results[S.INDEXED] is True  # the highest rank always wins
        ranks = [s.rank for s in observed]
        assert ranks == sorted(ranks), f"status went backwards: {observed}"


async def test_two_racing_advances_one_wins(registry: DynamoDbRegistry) -> None:
    await registry.put_version(_record())
    a, b = await asyncio.gather(
        registry.advance("acme", "doc", "v1", S.FAILED, reason="corrupt"),
        registry.advance("acme", "doc", "v1", S.FAILED, reason="timeout"),
    )
    assert sorted([a, b]) == [False, True]
    got = await registry.get("acme", "doc", "v1")
    assert got.status is S.FAILED
    assert got.reason == ("corrupt" if a else "timeout")


async def test_a_stale_seq_never_becomes_current(registry: DynamoDbRegistry) -> None:
    assert await registry.put_version(_record(version="new", seq=200))
    assert await registry.put_version(_record(version="old", seq=100))  # stored, not current
    assert (await registry.current("acme", "doc")).version == "new"
    assert [r.version for r in await registry.find(tenant="acme")] == ["new"]


async def test_racing_put_versions_settle_on_the_highest_seq(registry: DynamoDbRegistry) -> None:
    seqs = random.sample(range(1, 10_000), 8)
    await asyncio.gather(*(registry.put_version(_record(version=f"v{s}", seq=s)) for s in seqs))
    top = max(seqs)
    assert (await registry.current("acme", "doc")).version == f"v{top}"
    # exactly one version is flagged current, so operator queries see one record per document
    assert [r.version for r in await registry.find(tenant="acme")] == [f"v{top}"]
    assert len(await registry.find(tenant="acme", all_versions=True)) == 8
    assert [r.seq for r in await registry.versions("acme", "doc")] == sorted(seqs, reverse=True)


async def test_a_version_stored_before_a_crash_is_promoted_on_redelivery(
    registry: DynamoDbRegistry, clients: AwsClients
) -> None:
    # The first put_version stored the item and died before moving the current pointer.
    ddb = await clients.client("dynamodb")
    await ddb.put_item(TableName=registry.table, Item=_record_item(_record(seq=5)))
    assert await registry.current("acme", "doc") is None
    assert await registry.put_version(_record(seq=5)) is False  # still a no-op for the caller
    assert (await registry.current("acme", "doc")).version == "v1"


async def test_operator_queries_use_the_status_index_not_a_scan(
    registry: DynamoDbRegistry, clients: AwsClients
) -> None:
    for i in range(5):
        await registry.put_version(_record(f"d{i}"))
    await registry.fail("acme", "d3", "v1", "corrupt PDF", code="corrupt_pdf")
    queries = await _calls(clients, "Query")
    scans = await _calls(clients, "Scan")

    [failed] = await registry.find(status=S.FAILED, tenant="acme")

    assert (failed.doc_id, failed.error_code) == ("d3", "corrupt_pdf")
    assert scans == []
    assert [q["IndexName"] for q in queries] == [STATUS_INDEX]


async def test_table_schema(registry: DynamoDbRegistry, clients: AwsClients) -> None:
    ddb = await clients.client("dynamodb")
    table = (await ddb.describe_table(TableName=registry.table))["Table"]
    [gsi] = table["GlobalSecondaryIndexes"]
    assert gsi["IndexName"] == STATUS_INDEX
    assert [(k["AttributeName"], k["KeyType"]) for k in gsi["KeySchema"]] == [
        ("status", "HASH"),
        ("updated_at", "RANGE"),
    ]
    [lsi] = table["LocalSecondaryIndexes"]
    assert lsi["IndexName"] == TIME_INDEX
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"


async def test_missing_table_is_a_dependency_error(clients: AwsClients) -> None:
    table = f"missing-{uuid.uuid4().hex[:12]}"
    registry = DynamoDbRegistry(table, clients=clients)
    with pytest.raises(DependencyError, match=f"{table}: does not exist"):
        await registry.check()
    with pytest.raises(DependencyError, match=table):
        await registry.get("acme", "doc", "v1")


async def test_a_table_without_its_indexes_fails_the_check(clients: AwsClients) -> None:
    ddb = await clients.client("dynamodb")
    table = f"bare-{uuid.uuid4().hex[:12]}"
    await ddb.create_table(
        TableName=table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
    )
    with pytest.raises(DependencyError, match="lacks index by_status, by_time"):
        await DynamoDbRegistry(table, clients=clients).check()


async def test_advance_refuses_unknown_fields_and_bad_values(registry: DynamoDbRegistry) -> None:
    await registry.put_version(_record())
    with pytest.raises(ValueError, match=r"cannot set \['seq'\]"):
        await registry.advance("acme", "doc", "v1", S.PARSED, seq=99)
    with pytest.raises(ValueError, match="chunk_count"):
        await registry.advance("acme", "doc", "v1", S.PARSED, chunk_count="many")
    assert (await registry.get("acme", "doc", "v1")).status is S.FETCHED
    # None clears a field
    assert await registry.advance("acme", "doc", "v1", S.PARSED, title="T")
    assert await registry.advance("acme", "doc", "v1", S.EMBEDDED, title=None)
    assert (await registry.get("acme", "doc", "v1")).title is None
