"""Poison, not crash loop: a message whose processing ended its worker process is recognised on
redelivery and failed with the reason; and the embedder refuses a payload over its bound. Real
``Worker`` loops over the in-memory queue and registry (``datatorag.testing.memory``)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from datatorag.config import LimitSettings, Settings
from datatorag.domain.contracts import ChunksReady, parse_message
from datatorag.domain.models import DocumentRecord, DocumentStatus
from datatorag.pipeline.crash_guard import CrashGuard
from datatorag.pipeline.stages import EmbedStage, StageDeps
from datatorag.pipeline.worker import BatchHandler, Delivery, Worker
from datatorag.testing.memory import (
    HashingEmbedder,
    ManualClock,
    MemoryBlobStore,
    MemoryQueue,
    MemoryRegistry,
)

pytestmark = pytest.mark.timeout(60)
VT = 30


class Recording(BatchHandler):
    service = "embedder"

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def handle_batch(self, deliveries: Sequence[Delivery]) -> list[BaseException | None]:
        self.seen += [d.message.doc_id for d in deliveries]
        return [None] * len(deliveries)


async def _setup() -> tuple[MemoryRegistry, MemoryQueue, ManualClock, ChunksReady]:
    clock = ManualClock()
    registry, queue = MemoryRegistry(), MemoryQueue("embed", VT, clock=clock)
    record = DocumentRecord(
        tenant="acme", doc_id="d1", version="v1", seq=1, source="s", path="p.md",
        content_hash="h", status=DocumentStatus.PARSED,
    )  # fmt: skip
    await registry.put_version(record)
    await registry.advance("acme", "d1", "v1", DocumentStatus.PARSED)
    msg = ChunksReady(tenant="acme", doc_id="d1", version="v1", chunks_key="k", chunk_count=1)
    await queue.send(msg.to_json())
    return registry, queue, clock, msg


async def _die_mid_message(queue: MemoryQueue, guard: CrashGuard, clock: ManualClock) -> None:
    """A worker takes the message, counts the attempt, and is killed (no clean-up runs)."""
    [raw] = await queue.receive(1)
    assert await guard.enter(raw, parse_message(raw.body)) is None
    clock.advance(VT + 1)


async def _run(worker: Worker, queue: MemoryQueue) -> None:
    worker.start()
    try:
        async with asyncio.timeout(20):
            while await queue.depth() > 0:  # noqa: ASYNC110 - the queue has no event to await
                await asyncio.sleep(0.02)
    finally:
        await worker.stop()


async def test_a_message_that_killed_its_worker_twice_is_failed_not_retried() -> None:
    registry, queue, clock, _ = await _setup()
    guard = CrashGuard(registry, "embedder", max_crashes=2)
    await _die_mid_message(queue, guard, clock)
    await _die_mid_message(queue, guard, clock)
    handler = Recording()
    await _run(Worker(queue, handler, wait_s=0.05, crash_guard=guard), queue)
    assert handler.seen == []  # not handed to a third process to kill
    record = await registry.get("acme", "d1", "v1")
    assert record is not None and record.status is DocumentStatus.FAILED
    assert record.error_code == "worker_crashed" and "2 times" in (record.reason or "")
    assert "attempts.embedder" not in record.metadata
    assert await queue.dlq_depth() == 0  # acknowledged with its reason, not dead-lettered


async def test_one_crash_is_retried_and_a_clean_attempt_clears_the_marker() -> None:
    registry, queue, clock, _ = await _setup()
    guard = CrashGuard(registry, "embedder", max_crashes=2)
    await _die_mid_message(queue, guard, clock)
    marked = await registry.get("acme", "d1", "v1")
    assert marked is not None and marked.metadata["attempts.embedder"] == "1"
    handler = Recording()
    await _run(Worker(queue, handler, wait_s=0.05, crash_guard=guard), queue)
    assert handler.seen == ["d1"]
    record = await registry.get("acme", "d1", "v1")
    assert record is not None and record.status is DocumentStatus.PARSED
    assert "attempts.embedder" not in record.metadata


async def test_the_embedder_refuses_a_payload_over_its_bound() -> None:
    registry, queue, _, msg = await _setup()
    blobs = MemoryBlobStore()
    await blobs.put("k", b"{" + b" " * 200_000 + b"}")
    settings = Settings(limits=LimitSettings(max_payload_bytes=100_000))
    stage = EmbedStage(StageDeps(settings, registry, blobs), HashingEmbedder(8), queue)
    await _run(Worker(queue, stage, wait_s=0.05), queue)
    record = await registry.get("acme", "d1", "v1")
    assert record is not None and record.status is DocumentStatus.FAILED
    assert record.error_code == "payload_too_large"
    assert "200,002 bytes" in (record.reason or "")
    assert msg.doc_id == record.doc_id
