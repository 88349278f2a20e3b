"""FairLimiter: round-robin grants between keys, never more than ``slots`` at once."""

from __future__ import annotations

import asyncio

import pytest

from datatorag.connectors.fairness import FairLimiter


async def test_round_robin_between_keys() -> None:
    limiter = FairLimiter(1)
    order: list[str] = []
    gate = asyncio.Event()

    async def work(key: str) -> None:
        async with limiter.slot(key):
            order.append(key)
            await gate.wait()

    # the big source queues 50 jobs first, the small one 2 jobs after them
    big = [asyncio.create_task(work("big")) for _ in range(50)]
    await asyncio.sleep(0)
    small = [asyncio.create_task(work("small")) for _ in range(2)]
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(*big, *small)
    # the big key was first in the rotation; then turns alternate, so small's two jobs are
    # served 3rd and 5th instead of after the 50-job backlog
    assert order[:6] == ["big", "big", "small", "big", "small", "big"]
    assert limiter.in_use == 0 and limiter.waiting() == 0


async def test_never_exceeds_slots_and_survives_cancellation() -> None:
    limiter = FairLimiter(3)
    active = peak = 0

    async def work(key: str) -> None:
        nonlocal active, peak
        async with limiter.slot(key):
            active += 1
            peak = max(peak, active)
            await asyncio.sleep(0.001)
            active -= 1

    tasks = [asyncio.create_task(work(f"k{i % 4}")) for i in range(40)]
    await asyncio.sleep(0)
    for t in tasks[10:15]:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert peak == 3
    assert limiter.in_use == 0 and limiter.waiting() == 0


def test_rejects_zero_slots() -> None:
    with pytest.raises(ValueError):
        FairLimiter(0)
