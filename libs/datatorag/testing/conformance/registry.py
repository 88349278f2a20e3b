"""Conformance suite of the ``Registry`` port (``datatorag.ports.registry``).

Reuse it for any adapter, in this repository or outside it: write a test module that star-imports
this module and provides a fixture named ``registry`` yielding the adapter under test (and
closing it afterwards)::

    import pytest

    from datatorag.testing.conformance.registry import *  # noqa: F403

    @pytest.fixture
    async def registry(tmp_path):
        adapter = MyRegistry(...)
        yield adapter
        await adapter.close()

pytest collects the imported test functions as if they were written in that module. ``__all__``
lists every test function of the suite, the fixture it defines itself (``tenant``) and
``pytestmark`` (its timeout: pytest reads marks from the test module, so the star-import carries
them along); the helpers stay private. The tests are ``async def`` and need pytest-asyncio
(``asyncio_mode = "auto"``, or add ``pytest.mark.asyncio`` to your module's ``pytestmark``) and
pytest-timeout.

Each test uses its own random tenant (and lease names), so adapters backed by one shared table
work too.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from datatorag.domain.models import DocumentRecord
from datatorag.domain.models import DocumentStatus as S
from datatorag.domain.principal import EVERYONE
from datatorag.ports import ApiKeyRecord, Registry, RunTrigger, RunType, SourceRecord, SyncRun

__all__ = [
    "pytestmark",
    "tenant",
    "test_advance_may_skip_states",
    "test_advance_moves_forward_and_sets_fields",
    "test_advance_never_moves_backwards",
    "test_advance_of_unknown_version_is_false",
    "test_api_key_put_is_put_if_absent_and_round_trips",
    "test_api_key_revoke_once_keeps_the_record",
    "test_api_keys_list_per_tenant_oldest_first",
    "test_check_passes",
    "test_concurrent_duplicate_advances_succeed_once",
    "test_concurrent_lease_acquire_has_one_winner",
    "test_current_follows_the_highest_seq_and_ignores_stale_versions",
    "test_expired_lease_can_be_taken_over",
    "test_fail_default_code_is_permanent",
    "test_fail_records_reason_and_code",
    "test_find_by_audience_inside_the_query",
    "test_find_current_versions_newest_update_first",
    "test_find_filters_by_status_source_and_limit",
    "test_find_without_tenant_spans_tenants",
    "test_lease_is_exclusive_renewable_and_released_by_owner_only",
    "test_missing_records_are_none",
    "test_put_existing_version_is_a_no_op",
    "test_put_version_round_trips_every_field",
    "test_releasing_a_free_lease_is_harmless",
    "test_set_groups_changes_the_audience_only",
    "test_set_marker_on_a_version_without_metadata_or_unknown",
    "test_set_marker_sets_and_removes_one_entry_and_nothing_else",
    "test_sources_round_trip_replace_and_stay_per_tenant",
    "test_stalled_ignores_superseded_versions",
    "test_stalled_lists_old_non_final_current_versions",
    "test_sync_run_keeps_type_trigger_and_errors",
    "test_sync_runs_newest_first_and_replace_by_run_id",
    "test_tenants_are_separate",
]

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def tenant() -> str:
    return f"tenant-{uuid.uuid4().hex[:10]}"


def _record(
    tenant: str, doc_id: str = "doc-1", version: str = "v1", seq: int = 1, **kw: Any
) -> DocumentRecord:
    fields: dict[str, Any] = {
        "source": "ftp-main",
        "path": f"/in/{doc_id}.pdf",
        "content_hash": (version * 64)[:64],
        **kw,
    }
    return DocumentRecord(tenant=tenant, doc_id=doc_id, version=version, seq=seq, **fields)


async def _get(registry: Registry, tenant: str, doc_id: str, version: str) -> DocumentRecord:
    record = await registry.get(tenant, doc_id, version)
    assert record is not None, f"no record of {tenant}/{doc_id}/{version}"
    return record


async def _current(registry: Registry, tenant: str, doc_id: str) -> DocumentRecord:
    record = await registry.current(tenant, doc_id)
    assert record is not None, f"no current version of {tenant}/{doc_id}"
    return record


async def test_check_passes(registry: Registry) -> None:
    await registry.check()


async def test_put_version_round_trips_every_field(registry: Registry, tenant: str) -> None:
    rec = _record(
        tenant,
        title="Quarterly report",
        doc_type="pdf",
        size=12345,
        blob_key=f"raw/{tenant}/ftp-main/doc-1/abc",
        created_at=datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=UTC),
        updated_at=datetime(2024, 5, 1, 12, 30, 16, 654321, tzinfo=UTC),
        metadata={"owner": "finance", "lang": "en"},
    )
    assert await registry.put_version(rec) is True
    got = await _get(registry, tenant, "doc-1", "v1")
    assert got == rec
    assert got.status is S.FETCHED
    assert await registry.current(tenant, "doc-1") == rec


async def test_put_existing_version_is_a_no_op(registry: Registry, tenant: str) -> None:
    assert await registry.put_version(_record(tenant, title="first")) is True
    assert await registry.advance(tenant, "doc-1", "v1", S.PARSED, chunk_count=3)
    assert await registry.put_version(_record(tenant, title="second")) is False
    got = await _get(registry, tenant, "doc-1", "v1")
    assert got.title == "first" and got.status is S.PARSED and got.chunk_count == 3
    assert len(await registry.versions(tenant, "doc-1")) == 1


async def test_missing_records_are_none(registry: Registry, tenant: str) -> None:
    assert await registry.get(tenant, "nope", "v1") is None
    assert await registry.current(tenant, "nope") is None
    assert await registry.versions(tenant, "nope") == []


async def test_current_follows_the_highest_seq_and_ignores_stale_versions(
    registry: Registry, tenant: str
) -> None:
    await registry.put_version(_record(tenant, version="v1", seq=100))
    await registry.put_version(_record(tenant, version="v2", seq=200))
    assert (await _current(registry, tenant, "doc-1")).version == "v2"
    # A late, older version is stored but never becomes current.
    assert await registry.put_version(_record(tenant, version="v0", seq=50)) is True
    assert (await _current(registry, tenant, "doc-1")).version == "v2"
    assert (await _get(registry, tenant, "doc-1", "v0")).seq == 50
    assert [r.version for r in await registry.versions(tenant, "doc-1")] == ["v2", "v1", "v0"]


async def test_tenants_are_separate(registry: Registry, tenant: str) -> None:
    other = tenant + "-other"
    await registry.put_version(_record(tenant, version="v1", seq=1))
    await registry.put_version(_record(other, version="v9", seq=9))
    assert (await _current(registry, tenant, "doc-1")).version == "v1"
    assert (await _current(registry, other, "doc-1")).version == "v9"
    assert await registry.get(tenant, "doc-1", "v9") is None


async def test_advance_moves_forward_and_sets_fields(registry: Registry, tenant: str) -> None:
    rec = _record(tenant)
    await registry.put_version(rec)
    assert await registry.advance(tenant, "doc-1", "v1", S.PARSED, page_count=10, chunk_count=4)
    assert await registry.advance(
        tenant, "doc-1", "v1", S.EMBEDDED, title="Found title", doc_type="pdf"
    )
    assert await registry.advance(tenant, "doc-1", "v1", S.INDEXED)
    got = await _get(registry, tenant, "doc-1", "v1")
    assert got.status is S.INDEXED
    assert (got.page_count, got.chunk_count, got.title, got.doc_type) == (
        10,
        4,
        "Found title",
        "pdf",
    )
    assert got.updated_at > rec.updated_at
    assert got.created_at == rec.created_at


async def test_advance_may_skip_states(registry: Registry, tenant: str) -> None:
    await registry.put_version(_record(tenant))
    assert await registry.advance(tenant, "doc-1", "v1", S.INDEXED, chunk_count=1)
    assert (await _get(registry, tenant, "doc-1", "v1")).status is S.INDEXED


@pytest.mark.parametrize(
    ("reached", "late"),
    [
        (S.PARSED, S.PARSED),  # duplicate
        (S.INDEXED, S.PARSED),  # late message
        (S.INDEXED, S.EMBEDDED),
        (S.FAILED, S.INDEXED),  # FAILED is terminal
        (S.DELETED, S.INDEXED),  # DELETED is terminal
        (S.DELETED, S.FAILED),
    ],
)
async def test_advance_never_moves_backwards(
    registry: Registry, tenant: str, reached: S, late: S
) -> None:
    await registry.put_version(_record(tenant))
    assert await registry.advance(tenant, "doc-1", "v1", reached, chunk_count=7)
    before = await _get(registry, tenant, "doc-1", "v1")
    assert await registry.advance(tenant, "doc-1", "v1", late, chunk_count=99) is False
    after = await _get(registry, tenant, "doc-1", "v1")
    assert after == before  # nothing changed, not even the extra fields


async def test_advance_of_unknown_version_is_false(registry: Registry, tenant: str) -> None:
    await registry.put_version(_record(tenant))
    assert await registry.advance(tenant, "doc-1", "nope", S.PARSED) is False
    assert await registry.advance(tenant, "nope", "v1", S.PARSED) is False
    assert await registry.get(tenant, "nope", "v1") is None  # advance never creates records


async def test_concurrent_duplicate_advances_succeed_once(registry: Registry, tenant: str) -> None:
    await registry.put_version(_record(tenant))
    results = await asyncio.gather(
        *(registry.advance(tenant, "doc-1", "v1", S.PARSED) for _ in range(8))
    )
    assert results.count(True) == 1


async def test_fail_records_reason_and_code(registry: Registry, tenant: str) -> None:
    await registry.put_version(_record(tenant))
    await registry.advance(tenant, "doc-1", "v1", S.PARSED)
    assert await registry.fail(tenant, "doc-1", "v1", "corrupt PDF: no xref", code="corrupt_pdf")
    got = await _get(registry, tenant, "doc-1", "v1")
    assert (got.status, got.reason, got.error_code) == (
        S.FAILED,
        "corrupt PDF: no xref",
        "corrupt_pdf",
    )
    assert await registry.fail(tenant, "doc-1", "v1", "again") is False
    assert (await _get(registry, tenant, "doc-1", "v1")).reason == "corrupt PDF: no xref"


async def test_fail_default_code_is_permanent(registry: Registry, tenant: str) -> None:
    await registry.put_version(_record(tenant))
    assert await registry.fail(tenant, "doc-1", "v1", "empty file")
    assert (await _get(registry, tenant, "doc-1", "v1")).error_code == "permanent"


async def test_set_marker_sets_and_removes_one_entry_and_nothing_else(
    registry: Registry, tenant: str
) -> None:
    await registry.put_version(_record(tenant, metadata={"owner": "finance"}))
    await registry.advance(tenant, "doc-1", "v1", S.PARSED, chunk_count=3)
    before = await _get(registry, tenant, "doc-1", "v1")
    await registry.set_marker(tenant, "doc-1", "v1", "parse.started", "2")
    await registry.set_marker(tenant, "doc-1", "v1", "odd key: 'x'.y", "1")
    got = await _get(registry, tenant, "doc-1", "v1")
    assert got.metadata == {"owner": "finance", "parse.started": "2", "odd key: 'x'.y": "1"}
    assert got.model_dump(exclude={"metadata"}) == before.model_dump(exclude={"metadata"})
    await registry.set_marker(tenant, "doc-1", "v1", "parse.started", "3")  # replaces
    await registry.set_marker(tenant, "doc-1", "v1", "odd key: 'x'.y", None)  # removes
    await registry.set_marker(tenant, "doc-1", "v1", "never-set", None)  # removing nothing
    got = await _get(registry, tenant, "doc-1", "v1")
    assert got.metadata == {"owner": "finance", "parse.started": "3"}
    assert got.status is S.PARSED and got.chunk_count == 3


async def test_set_marker_on_a_version_without_metadata_or_unknown(
    registry: Registry, tenant: str
) -> None:
    await registry.put_version(_record(tenant))
    await registry.set_marker(tenant, "doc-1", "v1", "k", "v")
    assert (await _get(registry, tenant, "doc-1", "v1")).metadata == {"k": "v"}
    await registry.set_marker(tenant, "doc-1", "nope", "k", "v")  # unknown version: no-op
    await registry.set_marker(tenant, "nope", "v1", "k", None)
    assert await registry.get(tenant, "doc-1", "nope") is None
    assert await registry.get(tenant, "nope", "v1") is None  # set_marker never creates records


async def test_find_current_versions_newest_update_first(registry: Registry, tenant: str) -> None:
    for i in range(3):
        await registry.put_version(_record(tenant, doc_id=f"d{i}", version="v1", seq=1))
    await registry.put_version(_record(tenant, doc_id="d0", version="v2", seq=2))
    await asyncio.sleep(0.01)
    await registry.advance(tenant, "d1", "v1", S.PARSED)  # d1 is now the most recently updated
    found = await registry.find(tenant=tenant)
    assert (found[0].doc_id, found[0].version) == ("d1", "v1")
    assert sorted((r.doc_id, r.version) for r in found) == [
        ("d0", "v2"),
        ("d1", "v1"),
        ("d2", "v1"),
    ]
    updated = [r.updated_at for r in found]
    assert updated == sorted(updated, reverse=True)
    everything = await registry.find(tenant=tenant, all_versions=True)
    assert sorted((r.doc_id, r.version) for r in everything) == [
        ("d0", "v1"), ("d0", "v2"), ("d1", "v1"), ("d2", "v1"),
    ]  # fmt: skip


async def test_find_filters_by_status_source_and_limit(registry: Registry, tenant: str) -> None:
    await registry.put_version(_record(tenant, doc_id="a", source="ftp"))
    await registry.put_version(_record(tenant, doc_id="b", source="ftp"))
    await registry.put_version(_record(tenant, doc_id="c", source="s3"))
    await registry.advance(tenant, "a", "v1", S.INDEXED)
    await registry.fail(tenant, "c", "v1", "bad")
    assert [r.doc_id for r in await registry.find(tenant=tenant, status=S.INDEXED)] == ["a"]
    both = await registry.find(tenant=tenant, status=[S.FETCHED, S.FAILED])
    assert sorted(r.doc_id for r in both) == ["b", "c"]
    assert sorted(r.doc_id for r in await registry.find(tenant=tenant, source="ftp")) == ["a", "b"]
    assert [
        r.doc_id for r in await registry.find(tenant=tenant, source="ftp", status=S.FETCHED)
    ] == ["b"]
    assert len(await registry.find(tenant=tenant, limit=2)) == 2
    assert await registry.find(tenant=tenant, source="nowhere") == []


async def test_find_without_tenant_spans_tenants(registry: Registry, tenant: str) -> None:
    other = tenant + "-b"
    await registry.put_version(_record(tenant, doc_id="x", source=f"src-{tenant}"))
    await registry.put_version(_record(other, doc_id="y", source=f"src-{tenant}"))
    found = await registry.find(source=f"src-{tenant}")
    assert sorted((r.tenant, r.doc_id) for r in found) == [(tenant, "x"), (other, "y")]


async def test_stalled_lists_old_non_final_current_versions(
    registry: Registry, tenant: str
) -> None:
    old = datetime.now(UTC) - timedelta(hours=2)
    for doc, status in [("fetched", S.FETCHED), ("parsed", S.PARSED), ("indexed", S.INDEXED),
                        ("failed", S.FAILED)]:  # fmt: skip
        await registry.put_version(_record(tenant, doc_id=doc, created_at=old, updated_at=old))
        if status is not S.FETCHED:
            await registry.advance(tenant, doc, "v1", status)
    # "parsed", "indexed" and "failed" were just updated by advance; "fetched" two hours ago.
    # Thresholds are minutes apart from both, so a slow machine cannot blur them.
    await registry.advance(tenant, "parsed", "v1", S.EMBEDDED)
    stalled = await registry.stalled(600, tenant=tenant)
    assert [r.doc_id for r in stalled] == ["fetched"]
    assert await registry.stalled(3 * 3600, tenant=tenant) == []


async def test_stalled_ignores_superseded_versions(registry: Registry, tenant: str) -> None:
    await registry.put_version(_record(tenant, version="v1", seq=1))
    await registry.put_version(_record(tenant, version="v2", seq=2))
    await registry.advance(tenant, "doc-1", "v2", S.INDEXED)
    await asyncio.sleep(1.1)
    assert await registry.stalled(1.0, tenant=tenant) == []  # v1 is stuck but not current


async def test_lease_is_exclusive_renewable_and_released_by_owner_only(registry: Registry) -> None:
    name = f"lease-{uuid.uuid4().hex}"
    assert await registry.acquire_lease(name, "worker-a", 30) is True
    assert await registry.acquire_lease(name, "worker-b", 30) is False
    assert await registry.acquire_lease(name, "worker-a", 30) is True  # renewal
    await registry.release_lease(name, "worker-b")  # not the owner: no effect
    assert await registry.acquire_lease(name, "worker-b", 30) is False
    await registry.release_lease(name, "worker-a")
    assert await registry.acquire_lease(name, "worker-b", 30) is True
    assert await registry.acquire_lease(name, "worker-a", 30) is False


async def test_expired_lease_can_be_taken_over(registry: Registry) -> None:
    name = f"lease-{uuid.uuid4().hex}"
    ttl = 4.0  # roomy: a loaded CI machine can take a second per call
    assert await registry.acquire_lease(name, "worker-a", ttl) is True
    taken = time.monotonic()  # the lease expires no later than ttl after this
    assert await registry.acquire_lease(name, "worker-b", ttl) is False
    await asyncio.sleep(max(0.0, taken + ttl + 0.3 - time.monotonic()))
    assert await registry.acquire_lease(name, "worker-b", 30) is True
    assert await registry.acquire_lease(name, "worker-a", 30) is False


async def test_concurrent_lease_acquire_has_one_winner(registry: Registry) -> None:
    name = f"lease-{uuid.uuid4().hex}"
    results = await asyncio.gather(
        *(registry.acquire_lease(name, f"worker-{i}", 30) for i in range(6))
    )
    assert results.count(True) == 1


async def test_releasing_a_free_lease_is_harmless(registry: Registry) -> None:
    name = f"lease-{uuid.uuid4().hex}"
    await registry.release_lease(name, "nobody")
    assert await registry.acquire_lease(name, "worker-a", 30) is True


async def test_sync_runs_newest_first_and_replace_by_run_id(
    registry: Registry, tenant: str
) -> None:
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    for i in range(3):
        await registry.record_sync_run(
            SyncRun(
                tenant=tenant, source="ftp", run_id=f"r{i}", started_at=t0 + timedelta(minutes=i)
            )
        )
    await registry.record_sync_run(
        SyncRun(tenant=tenant, source="s3", run_id="other", started_at=t0)
    )
    runs = await registry.sync_runs(tenant, "ftp")
    assert [r.run_id for r in runs] == ["r2", "r1", "r0"]
    assert [r.run_id for r in await registry.sync_runs(tenant, "ftp", limit=2)] == ["r2", "r1"]

    finished = SyncRun(
        tenant=tenant,
        source="ftp",
        run_id="r1",
        started_at=t0 + timedelta(minutes=1),
        finished_at=t0 + timedelta(minutes=1, seconds=30),
        status="failed",
        error="login refused",
        counts={"new": 3, "changed": 1, "unchanged": 10, "deleted": 0, "failed": 2},
    )
    await registry.record_sync_run(finished)
    runs = await registry.sync_runs(tenant, "ftp")
    assert [r.run_id for r in runs] == ["r2", "r1", "r0"]
    assert runs[1] == finished
    assert [r.run_id for r in await registry.sync_runs(tenant, "s3")] == ["other"]
    assert await registry.sync_runs(tenant, "nowhere") == []


async def test_sync_run_keeps_type_trigger_and_errors(registry: Registry, tenant: str) -> None:
    run = SyncRun(
        tenant=tenant,
        source="ftp",
        run_id="r-batch",
        type=RunType.BATCH,
        trigger=RunTrigger.USER,
        counts={"seen": 4, "new": 4},
        errors=[{"path": "a.pdf", "code": "encrypted", "reason": "a password is required"}],
    )
    await registry.record_sync_run(run)
    [back] = await registry.sync_runs(tenant, "ftp")
    assert back == run
    assert back.type is RunType.BATCH and back.trigger is RunTrigger.USER


async def test_sources_round_trip_replace_and_stay_per_tenant(
    registry: Registry, tenant: str
) -> None:
    other = f"{tenant}-other"
    at = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    ftp = SourceRecord(tenant=tenant, source="ftp", kind="ftp", interval_s=900, next_run_at=at)
    s3 = SourceRecord(tenant=tenant, source="a-s3", kind="s3", interval_s=60)
    await registry.put_source(ftp)
    await registry.put_source(s3)
    await registry.put_source(SourceRecord(tenant=other, source="ftp", kind="sftp"))
    assert await registry.get_source(tenant, "ftp") == ftp
    assert [r.source for r in await registry.sources(tenant)] == ["a-s3", "ftp"]
    deleted = ftp.model_copy(update={"deleted_at": at, "deleted_by": "admin-key", "enabled": False})
    await registry.put_source(deleted)
    assert await registry.get_source(tenant, "ftp") == deleted
    assert len(await registry.sources(tenant)) == 2
    assert [r.kind for r in await registry.sources(other)] == ["sftp"]
    assert await registry.get_source(tenant, "nowhere") is None
    assert await registry.sources(f"{tenant}-none") == []


# -- audiences ------------------------------------------------------------------------------------
async def test_set_groups_changes_the_audience_only(registry: Registry, tenant: str) -> None:
    await registry.put_version(_record(tenant, "d", "v1", seq=1, groups=["hr"]))
    await registry.advance(tenant, "d", "v1", S.INDEXED, chunk_count=3)
    before = await _get(registry, tenant, "d", "v1")
    assert before.groups == ("hr",)
    assert await registry.set_groups(tenant, "d", "v1", ["managers", "hr", "hr"])
    after = await _get(registry, tenant, "d", "v1")
    assert after.groups == ("hr", "managers")
    assert after.status is S.INDEXED and after.chunk_count == 3
    # the tenant's answer cache generation moves (cached answers may cite it)
    assert after.updated_at > before.updated_at
    assert not await registry.set_groups(tenant, "d", "v9", ["hr"])
    assert not await registry.set_groups(f"{tenant}-x", "d", "v1", ["hr"])
    with pytest.raises(ValueError):
        await registry.set_groups(tenant, "d", "v1", [])
    await registry.put_version(_record(tenant, "e", "v1", seq=1))
    assert (await _get(registry, tenant, "e", "v1")).groups == (EVERYONE,)  # the default


async def test_find_by_audience_inside_the_query(registry: Registry, tenant: str) -> None:
    """``limit`` counts visible records: 5 hidden ones updated last do not crowd them out."""
    for i in range(3):
        await registry.put_version(_record(tenant, f"open{i}", seq=1))
        await registry.put_version(_record(tenant, f"hr{i}", seq=1, groups=["hr", "managers"]))
    for i in range(5):
        await registry.put_version(_record(tenant, f"exec{i}", seq=1, groups=["exec"]))
    staff = frozenset({EVERYONE})
    hr = frozenset({"hr", EVERYONE})

    def ids(records: list[DocumentRecord]) -> set[str]:
        return {r.doc_id for r in records}

    assert ids(await registry.find(tenant=tenant, audience=staff)) == {"open0", "open1", "open2"}
    assert len(await registry.find(tenant=tenant, audience=hr)) == 6
    assert ids(await registry.find(tenant=tenant, audience=frozenset({"managers"}))) == {
        "hr0", "hr1", "hr2",
    }  # fmt: skip
    assert len(await registry.find(tenant=tenant, audience=hr, limit=4)) == 4
    assert await registry.find(tenant=tenant, audience=frozenset()) == []
    assert len(await registry.find(tenant=tenant)) == 11  # None: every audience
    await registry.set_groups(tenant, "exec0", "v1", [EVERYONE])
    assert "exec0" in ids(await registry.find(tenant=tenant, audience=staff))


def _key(tenant: str, key_id: str | None = None, **kw: Any) -> ApiKeyRecord:
    key_id = key_id or uuid.uuid4().hex[:16]
    fields: dict[str, Any] = {
        "algorithm": "scrypt:n=16384,r=8,p=1",
        "salt": "00" * 16,
        "hash": "ab" * 32,
        "prefix": f"dtr_{key_id}_ab",
        **kw,
    }
    return ApiKeyRecord(key_id=key_id, tenant=tenant, **fields)


async def test_api_key_put_is_put_if_absent_and_round_trips(
    registry: Registry, tenant: str
) -> None:
    key = _key(
        tenant,
        role="admin",
        groups=["hr", "managers"],
        name="payroll export",
        created_at=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        created_by="cli",
    )
    assert await registry.put_api_key(key) is True
    assert await registry.get_api_key(key.key_id) == key
    clash = key.model_copy(update={"tenant": f"{tenant}-other", "hash": "cd" * 32})
    assert await registry.put_api_key(clash) is False
    assert await registry.get_api_key(key.key_id) == key  # the first one stays
    assert await registry.get_api_key(uuid.uuid4().hex[:16]) is None


async def test_api_keys_list_per_tenant_oldest_first(registry: Registry, tenant: str) -> None:
    other = f"{tenant}-other"
    t0 = datetime(2026, 2, 1, tzinfo=UTC)
    newer = _key(tenant, created_at=t0 + timedelta(hours=2))
    older = _key(tenant, created_at=t0)
    foreign = _key(other, created_at=t0 + timedelta(hours=1))
    for k in (newer, older, foreign):
        assert await registry.put_api_key(k)
    assert [k.key_id for k in await registry.api_keys(tenant)] == [older.key_id, newer.key_id]
    assert [k.key_id for k in await registry.api_keys(other)] == [foreign.key_id]
    everyone = [k.key_id for k in await registry.api_keys()]
    # a shared table may hold other tests' keys: ours appear, in creation order
    mine = [i for i in everyone if i in {older.key_id, newer.key_id, foreign.key_id}]
    assert mine == [older.key_id, foreign.key_id, newer.key_id]
    assert await registry.api_keys(f"{tenant}-none") == []


async def test_api_key_revoke_once_keeps_the_record(registry: Registry, tenant: str) -> None:
    key = _key(tenant)
    await registry.put_api_key(key)
    at = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    assert await registry.revoke_api_key(key.key_id, at=at, by="key:admin") is True
    back = await registry.get_api_key(key.key_id)
    assert back is not None
    assert back.revoked_at == at and back.revoked_by == "key:admin"
    assert back.model_copy(update={"revoked_at": None, "revoked_by": None}) == key
    assert await registry.revoke_api_key(key.key_id, at=at + timedelta(days=1)) is False
    again = await registry.get_api_key(key.key_id)
    assert again is not None and again.revoked_at == at  # the first revocation stands
    assert await registry.revoke_api_key(uuid.uuid4().hex[:16]) is False
    assert [k.revoked_at for k in await registry.api_keys(tenant)] == [at]
