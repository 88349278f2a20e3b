"""Deleting through the API, seen from the connector: a deleted document stays deleted until its
source changes it; a deleted source is never synced again; sources and their runs (type,
trigger, counts) are in the registry for the gateway to serve. Real folder source, SQLite
registry and queue, local blob store."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from datatorag.adapters.embedded.local_blobstore import LocalBlobStore
from datatorag.adapters.embedded.sqlite_queue import SqliteQueue
from datatorag.adapters.embedded.sqlite_registry import SqliteRegistry
from datatorag.config import Settings
from datatorag.connectors.folder import FolderSource
from datatorag.connectors.scheduler import ScheduledSource, Scheduler
from datatorag.connectors.sync import SyncOptions
from datatorag.domain.contracts import DocumentFetched, parse_message
from datatorag.domain.errors import NotFound
from datatorag.domain.keys import doc_id_for
from datatorag.domain.models import DocumentStatus
from datatorag.lifecycle.deletion import BlobRetention, SourceBusy, delete_document, delete_source
from datatorag.ports import RunTrigger, RunType
from datatorag.testing.memory import MemoryVectorIndex

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[dict]:
    root = tmp_path / "src"
    root.mkdir()
    d = {
        "registry": SqliteRegistry(tmp_path / "reg.db"),
        "blobstore": LocalBlobStore(tmp_path / "blobs"),
        "parse_queue": SqliteQueue(tmp_path / "q.db", name="parse"),
        "settings": Settings(),
        "root": root,
    }
    yield d
    await d["parse_queue"].close()
    await d["registry"].close()


def _scheduler(parts: dict, interval_s: float = 3600.0) -> tuple[Scheduler, FolderSource]:
    src = FolderSource("docs", "acme", parts["root"])
    sched = Scheduler(
        registry=parts["registry"],
        blobstore=parts["blobstore"],
        parse_queue=parts["parse_queue"],
        settings=parts["settings"],
        initial_delay=False,
    )
    sched.add(ScheduledSource(src, interval_s=interval_s, options=SyncOptions(delete_grace_s=0)))
    return sched, src


async def _fetched(queue: SqliteQueue) -> list[str]:
    out = []
    while batch := await queue.receive(10):
        out += [m.path for m in map(parse_message, (b.body for b in batch))
                if isinstance(m, DocumentFetched)]  # fmt: skip
        await queue.ack_batch(batch)
    return sorted(out)


async def test_api_deleted_document_stays_deleted_until_the_source_changes_it(parts) -> None:
    reg, root = parts["registry"], parts["root"]
    (root / "keep.txt").write_text("kept")
    (root / "gone.txt").write_text("to be deleted")
    sched, _ = _scheduler(parts)
    await sched.sync_now("acme", "docs")
    assert await _fetched(parts["parse_queue"]) == ["gone.txt", "keep.txt"]
    doc = doc_id_for("docs", "gone.txt")
    result = await delete_document(
        reg, MemoryVectorIndex(8), parts["blobstore"], "acme", doc, by="admin:ops"
    )
    assert result is not None and result.blobs_removed >= 1
    record = await reg.current("acme", doc)
    assert record is not None and record.status is DocumentStatus.DELETED
    assert record.metadata["deleted_by"] == "admin:ops" and record.metadata["deleted_at"]
    assert record.reason == "deleted by admin:ops"

    # same file, same hints: forgotten, not re-ingested
    run = await sched.sync_now("acme", "docs")
    assert run is not None and run.counts["unchanged"] == 2 and run.counts["deleted"] == 0
    assert await _fetched(parts["parse_queue"]) == []
    # touched (new mtime, same bytes): still the deleted content, still forgotten
    os.utime(root / "gone.txt", (1_700_000_000, 1_700_000_000))
    await sched.sync_now("acme", "docs")
    assert await _fetched(parts["parse_queue"]) == []
    # the source changes it: a new version, ingested again
    (root / "gone.txt").write_text("a new policy text")
    run = await sched.sync_now("acme", "docs")
    assert run is not None and run.counts["changed"] == 1
    assert await _fetched(parts["parse_queue"]) == ["gone.txt"]
    current = await reg.current("acme", doc)
    assert current is not None and current.status is DocumentStatus.FETCHED


async def test_deleting_twice_or_another_tenants_document_is_none(parts) -> None:
    reg = parts["registry"]
    (parts["root"] / "a.txt").write_text("alpha")
    sched, _ = _scheduler(parts)
    await sched.sync_now("acme", "docs")
    doc = doc_id_for("docs", "a.txt")
    index = MemoryVectorIndex(8)
    assert await delete_document(reg, index, None, "globex", doc, by="x") is None
    assert await delete_document(reg, index, None, "acme", "no-such-doc", by="x") is None
    assert await delete_document(reg, index, None, "acme", doc, by="x") is not None
    assert await delete_document(reg, index, None, "acme", doc, by="x") is None


async def test_sources_and_runs_are_registered_with_type_and_trigger(parts) -> None:
    reg = parts["registry"]
    (parts["root"] / "a.txt").write_text("alpha")
    sched, _ = _scheduler(parts, interval_s=600)
    await sched.start()
    try:
        for _ in range(100):
            runs = await reg.sync_runs("acme", "docs")
            if runs and runs[0].status == "ok":
                break
            await asyncio.sleep(0.05)
        sched.trigger("acme", "docs")
        for _ in range(100):
            runs = await reg.sync_runs("acme", "docs")
            if len(runs) == 2 and runs[0].status == "ok":
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # the loop registers the next run after the run
    finally:
        await sched.stop()
    first, second = runs[1], runs[0]
    assert (first.type, first.trigger) == (RunType.BATCH, RunTrigger.SCHEDULED)
    assert (second.type, second.trigger) == (RunType.INCREMENTAL, RunTrigger.USER)
    assert first.counts["seen"] == 1 and first.counts["new"] == 1
    assert second.counts["unchanged"] == 1
    [record] = await reg.sources("acme")
    assert (record.source, record.kind, record.interval_s) == ("docs", "folder", 600)
    assert record.next_run_at is not None and record.deleted_at is None


async def test_a_deleted_source_is_purged_and_never_synced_again(parts) -> None:
    reg, root = parts["registry"], parts["root"]
    for name in ("a.txt", "b.txt"):
        (root / name).write_text(name)
    sched, _ = _scheduler(parts)
    await sched.sync_now("acme", "docs")
    await _fetched(parts["parse_queue"])
    # a sync holding the lease makes the deletion wait its turn
    assert await reg.acquire_lease("sync:acme:docs", "a-running-sync", 30)
    with pytest.raises(SourceBusy):
        await delete_source(reg, MemoryVectorIndex(8), parts["blobstore"], "acme", "docs", by="x")
    await reg.release_lease("sync:acme:docs", "a-running-sync")

    result = await delete_source(
        reg, MemoryVectorIndex(8), parts["blobstore"], "acme", "docs", by="admin",
        retention=BlobRetention.PURGE,
    )  # fmt: skip
    assert result is not None and result.documents == 2
    records = await reg.find(tenant="acme", source="docs")
    assert {r.status for r in records} == {DocumentStatus.DELETED}
    assert [k async for k in parts["blobstore"].list("raw/")] == []
    assert await reg.get_source("acme", "docs") is not None
    # the scheduler (this one, and one started later) no longer syncs it
    (root / "c.txt").write_text("new file after the deletion")
    assert await sched.sync_now("acme", "docs") is None
    with pytest.raises(NotFound):
        sched.trigger("acme", "docs")
    later, _ = _scheduler(parts)
    await later.start()
    await asyncio.sleep(0.3)
    await later.stop()
    assert await _fetched(parts["parse_queue"]) == []
    assert await delete_source(reg, MemoryVectorIndex(8), None, "acme", "docs", by="x") is None
