"""The sync engine over a real folder source and the embedded adapters (SQLite registry and queue,
local blob store): exactly what flows to the parse queue across add / change / touch / rename /
delete, bad entries, the lease, crash recovery and idempotent re-syncs."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from datatorag.adapters.embedded.local_blobstore import LocalBlobStore
from datatorag.adapters.embedded.sqlite_queue import SqliteQueue
from datatorag.adapters.embedded.sqlite_registry import SqliteRegistry
from datatorag.config import Settings
from datatorag.connectors.base import Source, SourceEntry, SourceUnavailable
from datatorag.connectors.cursor import BlobCursorStore
from datatorag.connectors.folder import FolderSource
from datatorag.connectors.lease import SyncInProgress, lease_name
from datatorag.connectors.sync import SyncOptions, sync_source
from datatorag.domain.contracts import DocumentDeleted, DocumentFetched, parse_message
from datatorag.domain.keys import doc_id_for, raw_key
from datatorag.domain.models import DocumentStatus

pytestmark = pytest.mark.timeout(60)


@dataclass
class Env:
    registry: SqliteRegistry
    blobstore: LocalBlobStore
    queue: SqliteQueue
    settings: Settings
    root: Path

    async def sync(self, source: Source, **opts: object):
        options = SyncOptions(**{"delete_grace_s": 0.0, **opts})  # type: ignore[arg-type]
        return await sync_source(
            source,
            registry=self.registry,
            blobstore=self.blobstore,
            parse_queue=self.queue,
            settings=self.settings,
            options=options,
        )

    async def drain(self) -> list[DocumentFetched | DocumentDeleted]:
        out = []
        while batch := await self.queue.receive(10):
            for m in batch:
                out.append(parse_message(m.body))
            await self.queue.ack_batch(batch)
        return out


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    root = tmp_path / "src"
    root.mkdir()
    e = Env(
        registry=SqliteRegistry(tmp_path / "registry.db"),
        blobstore=LocalBlobStore(tmp_path / "blobs"),
        queue=SqliteQueue(tmp_path / "q.db", name="parse", visibility_timeout_s=30),
        settings=Settings(max_document_bytes=1000, stalled_after_s=900),
        root=root,
    )
    yield e
    await e.queue.close()
    await e.registry.close()
    await e.blobstore.close()


def write(root: Path, rel: str, data: bytes, mtime: float | None = None) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    if mtime is not None:
        os.utime(p, (mtime, mtime))
    return p


def write_raw(path: bytes, data: bytes) -> None:
    """A file whose name is not UTF-8 (pathlib cannot name it)."""
    with open(path, "wb") as fh:
        fh.write(data)


def folder(env: Env, **kw: object) -> FolderSource:
    return FolderSource("docs", "acme", env.root, **kw)  # type: ignore[arg-type]


def paths(msgs: list) -> list[tuple[str, str]]:
    return sorted((type(m).__name__, m.path) for m in msgs)


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_initial_sync_stores_blob_registry_and_message(env: Env) -> None:
    write(env.root, "a.txt", b"alpha")
    write(env.root, "sub/b.md", b"# beta")
    write(env.root, ".hidden/skip.txt", b"editor droppings")
    new_before = _metric("datatorag_connector_documents_total", kind="folder", outcome="new")
    run = await env.sync(folder(env))
    assert run.status == "ok", run.error
    assert run.counts["new"] == 2 and run.counts["failed"] == 0
    new_after = _metric("datatorag_connector_documents_total", kind="folder", outcome="new")
    assert new_after - new_before == 2
    msgs = await env.drain()
    assert paths(msgs) == [("DocumentFetched", "a.txt"), ("DocumentFetched", "sub/b.md")]
    m = next(m for m in msgs if m.path == "a.txt")
    sha = hashlib.sha256(b"alpha").hexdigest()
    assert m.content_hash == sha and m.version == sha[:16] and m.size == 5
    assert m.doc_id == doc_id_for("docs", "a.txt")
    assert m.blob_key == raw_key("acme", "docs", m.doc_id, sha)
    assert await env.blobstore.get(m.blob_key) == b"alpha"
    assert (await env.blobstore.head(m.blob_key)).metadata["sha256"] == sha
    rec = await env.registry.current("acme", m.doc_id)
    assert rec is not None and rec.status == DocumentStatus.FETCHED and rec.seq == m.seq
    assert rec.metadata["src_size"] == "5"
    runs = await env.registry.sync_runs("acme", "docs")
    assert runs[0].status == "ok" and runs[0].counts["new"] == 2 and runs[0].finished_at


async def test_add_change_touch_rename_delete(env: Env) -> None:
    t0 = time.time() - 100
    write(env.root, "keep.txt", b"keep", t0)
    write(env.root, "change.txt", b"v1", t0)
    write(env.root, "touch.txt", b"same", t0)
    write(env.root, "old-name.txt", b"moved", t0)
    write(env.root, "gone.txt", b"bye", t0)
    await env.sync(folder(env))
    await env.drain()

    write(env.root, "change.txt", b"v2", t0 + 1)
    write(env.root, "touch.txt", b"same", t0 + 5)  # new mtime, same bytes
    (env.root / "old-name.txt").rename(env.root / "new-name.txt")
    (env.root / "gone.txt").unlink()
    write(env.root, "added.txt", b"fresh")
    run = await env.sync(folder(env))
    assert run.status == "ok", run.error
    msgs = await env.drain()
    assert paths(msgs) == [
        ("DocumentDeleted", "gone.txt"),
        ("DocumentDeleted", "old-name.txt"),
        ("DocumentFetched", "added.txt"),
        ("DocumentFetched", "change.txt"),
        ("DocumentFetched", "new-name.txt"),
    ]
    assert run.counts == {
        "seen": 5,  # listed in this run
        "new": 2,
        "changed": 1,
        "unchanged": 2,
        "deleted": 2,
        "failed": 0,
        "resent": 0,
        "pending_delete": 0,
        "audience": 0,  # no audience changed
    }

    # nothing changed: nothing flows, and the touched file is not downloaded again
    downloads: list[str] = []
    src = folder(env)
    orig = src.fetch

    def counting(entry: SourceEntry):
        downloads.append(entry.path)
        return orig(entry)

    src.fetch = counting  # type: ignore[method-assign]
    run = await env.sync(src)
    assert run.counts["unchanged"] == 5 and run.counts["deleted"] == 0
    assert downloads == []
    assert await env.drain() == []


async def test_deletion_waits_for_grace_period(env: Env) -> None:
    write(env.root, "a.txt", b"a")
    await env.sync(folder(env))
    await env.drain()
    (env.root / "a.txt").unlink()
    run = await env.sync(folder(env), delete_grace_s=3600)
    assert run.counts["pending_delete"] == 1 and run.counts["deleted"] == 0
    assert await env.drain() == []
    # back before the grace period ended: no tombstone, and the pending mark is dropped
    write(env.root, "a.txt", b"a")
    run = await env.sync(folder(env), delete_grace_s=0.0)
    assert run.counts["deleted"] == 0 and run.counts["pending_delete"] == 0
    state = await BlobCursorStore(env.blobstore).load("acme", "docs")
    assert state["missing"] == {}


async def test_bad_entries_are_recorded_and_others_keep_flowing(env: Env) -> None:
    write(env.root, "ok.txt", b"fine")
    write(env.root, "empty.txt", b"")
    write(env.root, "big.bin", b"x" * 1001)
    (env.root / "bad\nname.txt").write_bytes(b"x")
    os.makedirs(env.root / "sub", exist_ok=True)
    write_raw(os.path.join(os.fsencode(env.root), b"sub", b"caf\xe9.txt"), b"latin-1 name")
    run = await env.sync(folder(env))
    assert run.status == "ok"
    assert run.counts["new"] == 1 and run.counts["failed"] == 4
    assert paths(await env.drain()) == [("DocumentFetched", "ok.txt")]
    failed = {
        r.path: r for r in await env.registry.find(tenant="acme", status=DocumentStatus.FAILED)
    }
    assert failed["empty.txt"].error_code == "empty_file"
    assert failed["big.bin"].error_code == "too_large" and "1001 bytes" in (
        failed["big.bin"].reason or ""
    )
    assert failed["bad\\x0aname.txt"].error_code == "control_char"
    assert failed["sub/caf\\xe9.txt"].error_code == "invalid_utf8"
    # a second sync records nothing new and sends nothing
    run = await env.sync(folder(env))
    assert await env.drain() == []
    assert len(await env.registry.find(tenant="acme", all_versions=True)) == 5


class ListingSource(Source):
    """A source whose listing and contents are given, for names a file system cannot hold."""

    kind = "test"

    def __init__(
        self,
        entries: dict[str, bytes],
        *,
        grow: set[str] = frozenset(),
        fail_after: int | None = None,
    ) -> None:
        super().__init__("api", "acme")
        self.entries = entries
        self.grow = grow
        self.fail_after = fail_after
        self.fetched: list[str] = []

    async def list(self):
        for n, (path, data) in enumerate(self.entries.items()):
            if self.fail_after is not None and n >= self.fail_after:
                raise SourceUnavailable("connection reset while listing")
            yield SourceEntry(path=path, size=len(data), mtime=1.0)

    async def fetch(self, entry: SourceEntry):
        self.fetched.append(entry.path)
        data = self.entries[entry.path]
        yield data
        if entry.path in self.grow:
            yield b"more"


async def test_hostile_names_never_fetched(env: Env) -> None:
    src = ListingSource(
        {
            "../etc/passwd": b"x",
            "/abs": b"x",
            "a/../../b": b"x",
            "nul\x00.txt": b"x",
            "x" * 300: b"x",
            "fine.txt": b"ok",
            "growing.txt": b"abc",
        },
        grow={"growing.txt"},
    )
    run = await env.sync(src)
    assert run.status == "ok" and run.counts["failed"] == 6 and run.counts["new"] == 1
    assert src.fetched == ["fine.txt", "growing.txt"]
    codes = {
        r.error_code for r in await env.registry.find(tenant="acme", status=DocumentStatus.FAILED)
    }
    assert codes == {
        "path_traversal",
        "absolute_path",
        "control_char",
        "name_too_long",
        "changed_during_fetch",
    }
    assert paths(await env.drain()) == [("DocumentFetched", "fine.txt")]


async def test_failed_listing_deletes_nothing(env: Env) -> None:
    src = ListingSource({"a": b"1", "b": b"2", "c": b"3"})
    await env.sync(src)
    await env.drain()
    broken = ListingSource({"a": b"1", "b": b"2", "c": b"3"}, fail_after=1)
    run = await env.sync(broken)
    assert run.status == "failed" and "unavailable" in (run.error or "")
    assert await env.drain() == []
    assert (await env.registry.sync_runs("acme", "api"))[0].status == "failed"


async def test_lease_prevents_overlap(env: Env) -> None:
    write(env.root, "a.txt", b"a")
    assert await env.registry.acquire_lease(lease_name("acme", "docs"), "other-replica", 60)
    with pytest.raises(SyncInProgress):
        await env.sync(folder(env))
    await env.registry.release_lease(lease_name("acme", "docs"), "other-replica")
    assert (await env.sync(folder(env))).status == "ok"


async def test_lost_message_after_crash_is_resent(env: Env) -> None:
    write(env.root, "a.txt", b"a")
    write(env.root, "b.txt", b"b")

    class DroppingQueue:
        """The queue dies after the registry write (a crash between the two)."""

        def __getattr__(self, name: str):
            return getattr(env.queue, name)

        async def send(self, body: str, *, delay_s: int = 0) -> str:
            raise ConnectionError("queue down")

        async def send_batch(self, bodies: list[str]) -> list[str]:
            raise ConnectionError("queue down")

    run = await sync_source(
        folder(env),
        registry=env.registry,
        blobstore=env.blobstore,
        parse_queue=DroppingQueue(),
        settings=env.settings,
    )  # type: ignore[arg-type]
    assert run.status == "failed" and "queue down" in (run.error or "")
    assert (await env.registry.sync_runs("acme", "docs"))[0].status == "failed"
    assert await env.drain() == []
    stored = await env.registry.find(tenant="acme", status=DocumentStatus.FETCHED)
    assert stored  # at least one version reached the registry without its message

    run = await env.sync(folder(env))
    assert run.status == "ok"
    msgs = await env.drain()
    assert paths(msgs) == [("DocumentFetched", "a.txt"), ("DocumentFetched", "b.txt")]
    assert run.counts["resent"] == len(stored)
    # and once delivered, a further sync is quiet
    await env.sync(folder(env))
    assert await env.drain() == []


async def test_concurrent_syncs_of_one_source_do_not_overlap(env: Env) -> None:
    for i in range(20):
        write(env.root, f"f{i}.txt", f"{i}".encode())
    results = await asyncio.gather(
        env.sync(folder(env)), env.sync(folder(env)), return_exceptions=True
    )
    ok = [r for r in results if not isinstance(r, BaseException)]
    busy = [r for r in results if isinstance(r, SyncInProgress)]
    assert len(ok) == 1 and len(busy) == 1
    assert len(await env.drain()) == 20


async def test_interrupted_run_is_closed_and_its_versions_resent(env: Env) -> None:
    """A process killed between the registry write and the send leaves a "running" run."""
    from datatorag.ports.registry import SyncRun

    write(env.root, "a.txt", b"a")
    await env.sync(folder(env))
    await env.drain()
    write(env.root, "a.txt", b"a2")
    crashed = SyncRun(tenant="acme", source="docs", run_id="crashed")
    await env.registry.record_sync_run(crashed)
    # what the crashed run got done: blob + registry, no message
    sha = hashlib.sha256(b"a2").hexdigest()
    doc_id = doc_id_for("docs", "a.txt")
    from datatorag.domain.models import DocumentRecord

    st = (env.root / "a.txt").stat()
    await env.blobstore.put(raw_key("acme", "docs", doc_id, sha), b"a2")
    await env.registry.put_version(
        DocumentRecord(
            tenant="acme",
            doc_id=doc_id,
            version=sha[:16],
            seq=time.time_ns(),
            source="docs",
            path="a.txt",
            content_hash=sha,
            size=2,
            blob_key=raw_key("acme", "docs", doc_id, sha),
            metadata={"src_size": "2", "src_mtime": repr(st.st_mtime)},
        )
    )
    run = await env.sync(folder(env))
    assert run.counts["resent"] == 1 and run.counts["unchanged"] == 1
    msgs = await env.drain()
    assert [(m.path, m.content_hash) for m in msgs] == [("a.txt", sha)]
    runs = {r.run_id: r for r in await env.registry.sync_runs("acme", "docs")}
    assert runs["crashed"].status == "failed" and "interrupted" in (runs["crashed"].error or "")


async def test_reverted_and_restored_content_becomes_current_again(env: Env) -> None:
    t0 = time.time() - 100
    write(env.root, "policy.txt", b"version A", t0)
    await env.sync(folder(env))
    [first] = await env.drain()
    write(env.root, "policy.txt", b"version B", t0 + 1)
    await env.sync(folder(env))
    await env.drain()

    # revert to A: the old bytes come back as a new, current version
    write(env.root, "policy.txt", b"version A", t0 + 2)
    run = await env.sync(folder(env))
    [reverted] = await env.drain()
    assert run.counts["changed"] == 1
    assert reverted.content_hash == first.content_hash and reverted.version == f"{first.version}-r1"
    current = await env.registry.current("acme", first.doc_id)
    assert current.version == reverted.version and current.status is DocumentStatus.FETCHED

    # deleted (the indexer marks it DELETED), then restored with the same bytes
    (env.root / "policy.txt").unlink()
    await env.sync(folder(env))
    [tomb] = await env.drain()
    assert isinstance(tomb, DocumentDeleted)
    await env.registry.advance("acme", first.doc_id, reverted.version, DocumentStatus.DELETED)
    write(env.root, "policy.txt", b"version A", t0 + 3)
    await env.sync(folder(env))
    [restored] = await env.drain()
    assert restored.version == f"{first.version}-r2"
    current = await env.registry.current("acme", first.doc_id)
    assert current.version == restored.version and current.status is DocumentStatus.FETCHED


async def test_outbox_close_never_drops_a_batch_that_is_being_sent(env: Env) -> None:
    """close() arriving while the flush timer is mid-send must not cancel that send."""
    from datatorag.connectors.outbox import Outbox

    class SlowQueue:
        def __getattr__(self, name: str):
            return getattr(env.queue, name)

        async def send_batch(self, bodies: list[str]) -> list[str]:
            await asyncio.sleep(0.2)  # the timer's flush is in here when close() comes
            return await env.queue.send_batch(bodies)

    outbox = Outbox(SlowQueue(), max_wait_s=0.01)  # type: ignore[arg-type]
    bodies = [
        DocumentFetched(
            tenant="acme",
            doc_id=f"d{i}",
            version="v1",
            seq=1,
            source="docs",
            path=f"{i}.txt",
            blob_key=f"raw/{i}",
            content_hash="h",
            size=1,
        ).to_json()
        for i in range(3)
    ]
    for body in bodies:
        await outbox.put(body)
    await asyncio.sleep(0.05)  # the timer fired and is sending
    await outbox.close()
    assert outbox.sent == 3
    assert len(await env.drain()) == 3
