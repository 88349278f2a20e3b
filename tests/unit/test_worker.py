"""The consumer loop on a real SQLite queue and registry: ack, retry, dead-letter, shutdown."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from datatorag.adapters.embedded.sqlite_queue import SqliteQueue
from datatorag.adapters.embedded.sqlite_registry import SqliteRegistry
from datatorag.domain.contracts import ChunksReady
from datatorag.domain.errors import PermanentError
from datatorag.domain.models import DocumentRecord, DocumentStatus
from datatorag.pipeline.worker import OneByOneHandler, Worker, backoff_s


def _msg(doc: str) -> str:
    return ChunksReady(
        tenant="t1", doc_id=doc, version="v1", chunks_key=f"k/{doc}", chunk_count=1
    ).to_json()


class Recorder(OneByOneHandler):
    service = "test"

    def __init__(self, behaviour, registry: SqliteRegistry | None = None) -> None:
        self.behaviour = behaviour
        self.calls: list[str] = []
        self.given_up: list[tuple[str, str]] = []
        self.registry = registry

    async def handle(self, message) -> None:
        self.calls.append(message.doc_id)
        await self.behaviour(message)

    async def on_give_up(self, message, reason: str) -> None:
        self.given_up.append((message.doc_id, reason))
        if self.registry:
            await self.registry.fail(
                message.tenant, message.doc_id, message.version, reason, code="gave_up"
            )


@pytest.fixture
async def q(tmp_path):
    queue = SqliteQueue(tmp_path / "q.sqlite3", "work", visibility_timeout_s=2, max_receives=3)
    yield queue
    await queue.close()


async def _run_until(worker: Worker, predicate) -> None:
    """Run ``worker`` until ``predicate()`` holds; the caller bounds the wait (asyncio.timeout)."""
    worker.start()
    try:
        while not predicate():  # noqa: ASYNC110 - predicates read plain lists, nothing to await
            await asyncio.sleep(0.05)
    finally:
        await worker.stop()


async def test_success_acks_each_message_once(q):
    async def ok(_):
        return None

    h = Recorder(ok)
    for d in ("a", "b", "c"):
        await q.send(_msg(d))
    async with asyncio.timeout(20):
        await _run_until(Worker(q, h, wait_s=0.2), lambda: len(h.calls) == 3)
    assert sorted(h.calls) == ["a", "b", "c"]
    assert await q.depth() == 0
    assert await q.dlq_messages() == []


async def test_permanent_error_is_acked_at_once_without_retry(q):
    async def bad(_):
        raise PermanentError("corrupt PDF: no xref table", code="pdf_corrupt")

    h = Recorder(bad)
    await q.send(_msg("a"))
    async with asyncio.timeout(20):
        await _run_until(Worker(q, h, wait_s=0.2), lambda: len(h.calls) == 1)
    await asyncio.sleep(0.3)
    assert h.calls == ["a"]  # no retry storm
    assert await q.depth() == 0 and await q.dlq_messages() == []


async def test_transient_errors_retry_then_dead_letter_with_reason(q, tmp_path):
    registry = SqliteRegistry(tmp_path / "reg.sqlite3")
    await registry.put_version(
        DocumentRecord(
            tenant="t1", doc_id="a", version="v1", seq=1, source="s", path="a.pdf", content_hash="h"
        )
    )

    async def flaky(_):
        raise ConnectionError("index unreachable")

    h = Recorder(flaky, registry)
    await q.send(_msg("a"))
    # backoff: 1 s after the first failure, 2 s after the second; the third gives up
    async with asyncio.timeout(30):
        await _run_until(Worker(q, h, wait_s=0.2), lambda: len(h.given_up) == 1)
    assert h.calls == ["a", "a", "a"]
    dead = await q.dlq_messages()
    assert len(dead) == 1 and "index unreachable" in dead[0].attributes.get("reason", "")
    rec = await registry.get("t1", "a", "v1")
    assert rec.status is DocumentStatus.FAILED
    assert "gave up after 3 attempts" in rec.reason and "index unreachable" in rec.reason
    await registry.close()


async def test_malformed_body_goes_straight_to_dlq(q):
    async def ok(_):
        return None

    h = Recorder(ok)
    await q.send("{not json")
    await q.send(json.dumps({"type": "chunks.ready", "tenant": "t"}))  # missing fields
    await q.send(_msg("good"))
    async with asyncio.timeout(20):
        await _run_until(Worker(q, h, wait_s=0.2), lambda: h.calls == ["good"])
    await asyncio.sleep(0.2)
    dead = await q.dlq_messages()
    assert len(dead) == 2
    assert all(m.attributes["reason"].startswith("malformed message") for m in dead)


async def test_heartbeat_keeps_a_long_job_invisible(q):
    async def slow(_):
        await asyncio.sleep(5)  # > 2 s visibility timeout

    h = Recorder(slow)
    await q.send(_msg("a"))
    w = Worker(q, h, wait_s=0.2)
    w.start()
    for _ in range(100):
        if h.calls:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(3)  # past the original timeout: the heartbeat must have extended it
    assert await q.receive(1, wait_s=0) == []
    await w.stop()
    assert h.calls == ["a"]


async def test_shutdown_past_grace_releases_in_flight_message(q):
    started = asyncio.Event()

    async def forever(_):
        started.set()
        await asyncio.sleep(3600)

    h = Recorder(forever)
    await q.send(_msg("a"))
    w = Worker(q, h, wait_s=0.2, grace_s=0.2)
    w.start()
    await asyncio.wait_for(started.wait(), 10)
    t0 = time.monotonic()
    await w.stop()
    assert time.monotonic() - t0 < 5
    # released, not left invisible until the timeout: another consumer gets it right away
    again = await q.receive(1, wait_s=0)
    assert len(again) == 1 and again[0].receive_count == 2


def test_backoff_grows_and_is_capped():
    assert [backoff_s(n) for n in (1, 2, 3, 4)] == [1, 2, 4, 8]
    assert backoff_s(50) == 300


async def test_queue_and_dlq_depth_are_exported(q):
    from prometheus_client import REGISTRY

    async def ok(_):
        return None

    await q.send("{poison")
    for d in ("a", "b"):
        await q.send(_msg(d), delay_s=60)  # waiting, not yet visible
    h = Recorder(ok)
    w = Worker(q, h, wait_s=0.2)
    w.depth_interval_s = 0.1
    w.start()
    try:
        for _ in range(100):
            if (
                REGISTRY.get_sample_value("datatorag_queue_depth", {"queue": "work-dlq"}) == 1
                and REGISTRY.get_sample_value("datatorag_queue_depth", {"queue": "work"}) == 2
            ):
                break
            await asyncio.sleep(0.05)
    finally:
        await w.stop()
    assert REGISTRY.get_sample_value("datatorag_queue_depth", {"queue": "work-dlq"}) == 1
    assert REGISTRY.get_sample_value("datatorag_queue_depth", {"queue": "work"}) == 2
