"""The parse sandbox (``datatorag.pipeline.sandbox``) with real worker processes: each limit ends
in its reason, a worker that died is replaced, one slow document does not hold back another
tenant's, and shutdown releases what is in flight. Plus ``FairSlots`` on its own."""

from __future__ import annotations

import asyncio
import time

import pytest

from datatorag.domain.errors import PermanentError
from datatorag.parsing.limits import ParseLimits
from datatorag.pipeline.sandbox import (
    FairSlots,
    ParseJob,
    ParseSandbox,
    SandboxClosed,
    SandboxLimits,
)
from tests.fixtures import documents as docs
from tests.fixtures import hostile

pytestmark = pytest.mark.timeout(180)


def job(data: bytes, name: str, **limits: int) -> ParseJob:
    return ParseJob(data, name, None, 200 << 20, ParseLimits(**limits), 256, 32, None, "s", name)


GOOD = job(docs.markdown_document(title="Parental Leave"), "leave.md")


async def test_a_document_parses_and_the_worker_is_reused() -> None:
    sandbox = ParseSandbox("minilm", SandboxLimits(workers=1))
    try:
        first = await sandbox.parse("acme", GOOD)
        pid = sandbox._slots[0].proc.pid  # type: ignore[union-attr]
        second = await sandbox.parse("acme", GOOD)
        assert first.chunk_count == second.chunk_count >= 1
        assert first.title == "Parental Leave" and first.doc_type == "markdown"
        assert sandbox._slots[0].proc.pid == pid  # type: ignore[union-attr]
    finally:
        await sandbox.close()


async def test_each_limit_ends_in_its_reason_and_a_dead_worker_is_replaced() -> None:
    # a generous CPU budget: on a slow machine the memory case must meet its memory limit first
    sandbox = ParseSandbox("minilm", SandboxLimits(workers=1, memory_mb=128, cpu_s=120, wall_s=180))
    try:
        with pytest.raises(PermanentError) as text:
            await sandbox.parse("acme", job(hostile.huge_text_pdf(pages=20), "big.pdf",
                                            max_chars=100_000))  # fmt: skip
        assert text.value.code == "too_much_text"
        with pytest.raises(PermanentError) as bomb:
            await sandbox.parse("acme", job(hostile.docx_bomb(2_000_000), "bomb.docx"))
        assert bomb.value.code == "decompression_bomb"
        # a tokenizer allocation far past 128 MiB: the worker dies (Rust OOM) or gets MemoryError
        with pytest.raises(PermanentError) as memory:
            await sandbox.parse("acme", job(b"word " * 6_000_000, "one.txt", max_chars=10**9,
                                            max_chunks=10**9))  # fmt: skip
        assert memory.value.code == "memory_limit", memory.value.reason
        # the slot's next document gets a fresh, healthy worker
        assert (await sandbox.parse("acme", GOOD)).chunk_count >= 1
    finally:
        await sandbox.close()


async def test_a_parse_over_its_cpu_budget_is_ended_and_the_worker_replaced() -> None:
    sandbox = ParseSandbox("minilm", SandboxLimits(workers=1, cpu_s=2, wall_s=120))
    try:
        # a long legitimate PDF over the CPU budget: the kernel ends the worker (SIGXCPU)
        long_pdf = hostile.huge_text_pdf(pages=2000, chars_per_page=20_000)
        with pytest.raises(PermanentError) as cpu:
            await sandbox.parse("acme", job(long_pdf, "long.pdf", max_chars=10**9,
                                            max_chunks=10**9, max_pages=10**6))  # fmt: skip
        assert cpu.value.code == "parse_timeout" and "CPU seconds" in cpu.value.reason
        assert (await sandbox.parse("acme", GOOD)).chunk_count >= 1
    finally:
        await sandbox.close()


async def test_wall_clock_limit() -> None:
    sandbox = ParseSandbox("minilm", SandboxLimits(workers=1, wall_s=0.5))
    try:
        with pytest.raises(PermanentError) as slow:
            await sandbox.parse("acme", job(hostile.huge_text_pdf(pages=400, chars_per_page=20_000),
                                            "slow.pdf", max_chars=10**9))  # fmt: skip
        assert slow.value.code == "parse_timeout" and "0.5 s" in slow.value.reason
        assert (await sandbox.parse("acme", GOOD)).chunk_count >= 1
    finally:
        await sandbox.close()


async def test_a_slow_document_does_not_hold_back_another_tenants() -> None:
    sandbox = ParseSandbox("minilm", SandboxLimits(workers=2))
    slow = job(hostile.huge_text_pdf(pages=600, chars_per_page=20_000), "slow.pdf",
               max_chars=10**9, max_chunks=10**9)  # fmt: skip
    try:
        await asyncio.gather(sandbox.parse("warm", GOOD), sandbox.parse("warm", GOOD))
        big = asyncio.create_task(sandbox.parse("acme", slow))
        await asyncio.sleep(0.3)
        started = time.perf_counter()
        small = await sandbox.parse("globex", GOOD)
        small_s = time.perf_counter() - started
        assert small.chunk_count >= 1
        assert not big.done(), "the slow document finished first: the test proves nothing"
        await big
        assert small_s < 5, small_s
    finally:
        await sandbox.close()


async def test_close_releases_a_parse_in_flight() -> None:
    sandbox = ParseSandbox("minilm", SandboxLimits(workers=1))
    slow = job(hostile.huge_text_pdf(pages=1500, chars_per_page=20_000), "slow.pdf",
               max_chars=10**9, max_chunks=10**9)  # fmt: skip
    await sandbox.parse("acme", GOOD)
    task = asyncio.create_task(sandbox.parse("acme", slow))
    await asyncio.sleep(0.5)
    started = time.perf_counter()
    await sandbox.close()
    with pytest.raises(SandboxClosed):
        await task
    assert time.perf_counter() - started < 10
    with pytest.raises(SandboxClosed):
        await sandbox.parse("acme", GOOD)


async def test_fair_slots_serve_the_tenant_with_fewest_running_then_fewest_served() -> None:
    slots = FairSlots(2)
    order: list[str] = []

    async def parse(tenant: str, hold: asyncio.Event) -> None:
        await slots.acquire(tenant)
        order.append(tenant)
        await hold.wait()
        slots.release(tenant)

    holds = [asyncio.Event() for _ in range(6)]
    # tenant a floods: 4 documents; b and c ask later
    tasks = [asyncio.create_task(parse("a", holds[i])) for i in range(4)]
    await asyncio.sleep(0)
    tasks.append(asyncio.create_task(parse("b", holds[4])))
    tasks.append(asyncio.create_task(parse("c", holds[5])))
    await asyncio.sleep(0)
    assert order == ["a", "a"]  # both slots taken by a
    holds[0].set()
    await asyncio.sleep(0.01)
    assert order[2] == "b"  # not a's third document: b has none running
    holds[1].set()
    await asyncio.sleep(0.01)
    assert order[3] == "c"  # a and c both have none running; a was served twice already
    for h in holds:
        h.set()
    await asyncio.gather(*tasks)
    assert sorted(order) == ["a", "a", "a", "a", "b", "c"]
    assert slots.free == 2 and not slots.running


async def test_fair_slots_cancelled_waiter_gives_its_turn_away() -> None:
    slots = FairSlots(1)
    await slots.acquire("a")
    waiter = asyncio.create_task(slots.acquire("b"))
    other = asyncio.create_task(slots.acquire("c"))
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    slots.release("a")
    await asyncio.wait_for(other, 1)
    assert slots.running == {"c": 1} and slots.free == 0
