"""The token buckets themselves: in-process and in a real Redis (atomic under concurrency, the
same arithmetic), and what happens when Redis is unreachable (limits per replica, not none)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from datatorag.gateway.ratelimit import MemoryLimiter, Rate, RedisLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_memory_bucket_refills_and_says_when() -> None:
    clock = Clock()
    limiter = MemoryLimiter(clock)
    rate = Rate(per_s=2.0, burst=3)
    assert [(await limiter.take("a", rate)).allowed for _ in range(4)] == [True] * 3 + [False]
    refused = await limiter.take("a", rate)
    assert refused.retry_after_s == pytest.approx(0.5) and refused.retry_after_header == "1"
    assert (await limiter.peek("a", rate)).allowed is False
    assert (await limiter.take("b", rate)).allowed  # buckets are per key
    clock.now += 0.5
    assert (await limiter.peek("a", rate)).allowed  # peeking takes nothing
    assert (await limiter.take("a", rate)).allowed
    assert not (await limiter.take("a", rate)).allowed
    clock.now += 100
    assert [(await limiter.take("a", rate)).allowed for _ in range(4)] == [True] * 3 + [False]


async def test_redis_buckets_are_atomic_under_concurrency(redis_server) -> None:
    limiter = RedisLimiter(redis_server.url)
    try:
        key = f"test:{uuid.uuid4().hex}"
        rate = Rate(per_s=0.01, burst=10)
        results = await asyncio.gather(*(limiter.take(key, rate) for _ in range(50)))
        assert sum(r.allowed for r in results) == 10
        refused = [r for r in results if not r.allowed]
        assert all(90 <= r.retry_after_s <= 100 for r in refused)  # 1 token per 100 s
        assert not (await limiter.peek(key, rate)).allowed
        assert (await limiter.peek(f"{key}-other", rate)).allowed
    finally:
        await limiter.aclose()


async def test_an_unreachable_redis_falls_back_to_per_replica_limits() -> None:
    limiter = RedisLimiter("redis://127.0.0.1:1/0", timeout_s=0.2)
    try:
        rate = Rate(per_s=0.01, burst=2)
        got = [(await limiter.take("k", rate)).allowed for _ in range(3)]
        assert got == [True, True, False]  # still limited, by this replica's own buckets
    finally:
        await limiter.aclose()
