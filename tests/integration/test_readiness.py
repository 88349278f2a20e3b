"""``/readyz`` tells the truth (embedded adapters, as ``bootstrap.Components`` registers them): each
check runs its dependency's real path, a failure names the dependency and its error class, and the
unauthenticated body shows no local path or library source location unless
``DATATORAG_DEBUG_ERRORS`` says so. Every broken state is made at run time from a healthy one."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from datatorag.adapters.embedded.sqlite_queue import SqliteQueue
from datatorag.bootstrap import Components
from datatorag.bootstrap.components import readiness_probe
from datatorag.config import Settings
from datatorag.domain.models import DocumentRecord
from datatorag.pipeline.worker import BatchHandler, Delivery, Worker
from datatorag.runtime import health_app

pytestmark = pytest.mark.timeout(180)

HEALTHY = {"disk", "queue:datatorag-parse", "registry", "blobstore"}


def _settings(root: Path, **kw: Any) -> Settings:
    return Settings(data_dir=root, min_free_disk_mb=1, **kw)


@pytest.fixture
async def components(tmp_path: Path) -> AsyncIterator[Components]:
    c = Components(_settings(tmp_path / "data"))
    yield c
    await c.close()


async def _readyz(c: Components) -> httpx.Response:
    app = health_app(c.readiness)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://health"
    ) as client:
        return await client.get("/readyz")


async def _open(c: Components) -> None:
    """Build what a pipeline service builds, so each registers its check."""
    await c.queue("parse").send("warm-up")
    await c.registry.put_version(
        DocumentRecord(
            tenant="acme",
            doc_id="d",
            version="v1",
            seq=1,
            source="s",
            path="p.md",
            content_hash="h" * 64,
        )
    )
    await c.blobstore.put("raw/a/b", b"x")


def _corrupt_table_root(db: Path, table: str) -> None:
    """Overwrite the root page of ``table``'s b-tree with garbage (the database is closed, so
    no WAL or page cache hides it). ``SELECT 1`` still passes afterwards."""
    with sqlite3.connect(db) as con:
        root = con.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()
        page_size = con.execute("PRAGMA page_size").fetchone()[0]
    con.close()
    with open(db, "r+b") as f:
        f.seek((root[0] - 1) * page_size)
        f.write(os.urandom(page_size))
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT 1").fetchone() == (1,)  # what the old check asked
    con.close()


def _assert_no_local_detail(resp: httpx.Response, root: Path) -> None:
    assert str(root) not in resp.text
    assert str(root.resolve()) not in resp.text
    assert ".rs:" not in resp.text and "Traceback" not in resp.text
    assert "debug" not in resp.json()


async def test_healthy_components_are_ready(components: Components) -> None:
    await _open(components)
    resp = await _readyz(components)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"ready": True, "checks": dict.fromkeys(HEALTHY, "ok")}
    # the probes leave nothing behind: the message is still the first to be received, once
    (msg,) = await components.queue("parse").receive(10)
    assert (msg.body, msg.receive_count) == ("warm-up", 1)
    assert [k async for k in components.blobstore.list("")] == ["raw/a/b"]


async def test_a_corrupted_queue_page_is_not_ready_naming_the_queue(tmp_path: Path) -> None:
    root = tmp_path / "data"
    first = Components(_settings(root))
    await _open(first)
    await first.queue("parse").send_batch([f"doc-{i}-" + "x" * 1500 for i in range(40)])
    await first.close()
    _corrupt_table_root(root / "queue.sqlite3", "queue_messages")

    c = Components(_settings(root))
    try:
        await _open_without_queue_writes(c)
        with pytest.raises(sqlite3.DatabaseError):  # what every worker's receive hits
            await c.queue("parse").receive(1)
        resp = await _readyz(c)
        assert resp.status_code == 503
        body = resp.json()
        assert body["ready"] is False
        assert body["checks"]["queue:datatorag-parse"] == (
            "DatabaseError: sqlite:<path>: database disk image is malformed"
        )
        assert {k for k, v in body["checks"].items() if v == "ok"} == HEALTHY - {
            "queue:datatorag-parse"
        }
        _assert_no_local_detail(resp, root)
    finally:
        await c.close()


async def _open_without_queue_writes(c: Components) -> None:
    c.queue("parse")
    await c.registry.find(limit=1)
    await c.blobstore.put("raw/a/b", b"x")


class _Never(BatchHandler):
    service = "test-worker"

    async def handle_batch(self, deliveries: Sequence[Delivery]) -> list[BaseException | None]:
        raise AssertionError("nothing can be received from a corrupted queue")


class _CountingQueue(SqliteQueue):
    receives = 0

    async def receive(self, max_messages: int = 10, **kw: Any) -> Any:
        self.receives += 1
        return await super().receive(max_messages, **kw)


async def test_workers_pause_on_a_corrupted_queue_rather_than_spin(tmp_path: Path) -> None:
    root = tmp_path / "data"
    first = Components(_settings(root))
    await first.queue("parse").send_batch([f"doc-{i}-" + "x" * 1500 for i in range(40)])
    await first.close()
    _corrupt_table_root(root / "queue.sqlite3", "queue_messages")

    c = Components(_settings(root))
    queue = _CountingQueue(root / "queue.sqlite3", name="datatorag-parse")
    c.readiness.add("queue:datatorag-parse", queue.check)
    worker = Worker(queue, _Never(), wait_s=0.2, ready_probe=readiness_probe(c.readiness))
    worker.start()
    try:
        started = time.monotonic()
        await asyncio.sleep(4)
        # the first receive fails; the worker then waits on the probe instead of receiving again
        # (the old loop received every 2 s, logging a traceback each time)
        assert queue.receives == 1
        assert worker.alive
        assert time.time() - worker.last_progress < 3  # probing counts as progress: stays live
        assert time.monotonic() - started >= 4
    finally:
        await worker.stop()
        await queue.close()
        await c.close()


async def test_a_corrupted_registry_is_not_ready_naming_the_registry(tmp_path: Path) -> None:
    root = tmp_path / "data"
    first = Components(_settings(root))
    await _open(first)
    await first.close()
    _corrupt_table_root(root / "registry.sqlite3", "doc_versions")
    c = Components(_settings(root))
    try:
        await _open_without_registry(c)
        resp = await _readyz(c)
        assert resp.status_code == 503
        assert resp.json()["checks"]["registry"].startswith("DatabaseError: ")
        assert resp.json()["checks"]["blobstore"] == "ok"
        _assert_no_local_detail(resp, root)
    finally:
        await c.close()


async def _open_without_registry(c: Components) -> None:
    c.registry  # noqa: B018 - built, so its check is registered; not read here
    c.queue("parse")
    await c.blobstore.put("raw/a/b", b"x")


async def test_a_blob_store_that_cannot_be_written_is_not_ready(components: Components) -> None:
    await _open(components)
    tmp = components.settings.data_dir / "blobs" / ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.write_bytes(b"a file where the write directory should be")
    resp = await _readyz(components)
    assert resp.status_code == 503
    assert resp.json()["checks"]["blobstore"].startswith(
        ("FileExistsError: ", "NotADirectoryError: ")
    ), resp.text
    _assert_no_local_detail(resp, components.settings.data_dir)


async def test_free_disk_below_the_floor_is_not_ready_naming_the_disk(tmp_path: Path) -> None:
    c = Components(Settings(data_dir=tmp_path / "data", min_free_disk_mb=10**9))
    try:
        await _open(c)
        resp = await _readyz(c)
        assert resp.status_code == 503
        disk = resp.json()["checks"]["disk"]
        assert disk.startswith("InsufficientStorage: data_dir has ")
        assert disk.endswith(
            "MiB free, below the 1000000000 MiB floor (DATATORAG_MIN_FREE_DISK_MB)"
        )
        assert resp.json()["checks"]["blobstore"] == "ok"
        _assert_no_local_detail(resp, tmp_path)
    finally:
        await c.close()


async def test_a_missing_index_is_not_ready_without_paths_unless_debugging(tmp_path: Path) -> None:
    root = tmp_path / "data"
    quiet, debug = Components(_settings(root)), Components(_settings(root, debug_errors=True))
    try:
        for c in (quiet, debug):
            await c.index()
        shutil.rmtree(root / "lancedb")  # the index deleted under the running service

        resp = await _readyz(quiet)
        assert resp.status_code == 503
        check = resp.json()["checks"]["vector_index"]
        assert check.startswith("RuntimeError: lancedb:<path>: lance error: Not found: <path>")
        _assert_no_local_detail(resp, root)

        # the debug setting shows everything: the paths and the Rust source location
        loud = await _readyz(debug)
        assert loud.status_code == 503
        assert str(root) in loud.json()["checks"]["vector_index"]
        assert ".rs:" in loud.json()["checks"]["vector_index"]
        assert "Traceback" in loud.json()["debug"]["vector_index"]
    finally:
        await quiet.close()
        await debug.close()
