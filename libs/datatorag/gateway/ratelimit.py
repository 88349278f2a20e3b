"""Token buckets for the gateway edge: in-process (embedded, one replica) or in Redis (every
gateway replica draws from the same buckets).

A bucket holds up to ``burst`` tokens and refills at ``per_s``; a request takes one, or is
refused with the time until one is back (``Retry-After``). In Redis one Lua script reads,
refills and takes atomically, on the server's clock (``TIME``), so replicas with skewed clocks
agree. If Redis cannot be reached the limiter falls back to its in-process buckets (logged, once
per outage): limits still hold per replica rather than not at all.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from datatorag.observability.log import get_logger

log = get_logger("gateway.ratelimit")


@dataclass(frozen=True, slots=True)
class Rate:
    per_s: float
    burst: float


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    retry_after_s: float = 0.0

    @property
    def retry_after_header(self) -> str:
        return str(max(1, math.ceil(self.retry_after_s)))


class Limiter(Protocol):
    async def take(self, key: str, rate: Rate) -> Decision:
        """Take one token from ``key``'s bucket."""
        ...

    async def peek(self, key: str, rate: Rate) -> Decision:
        """Whether a token is there, taking none."""
        ...

    async def aclose(self) -> None: ...


class MemoryLimiter:
    _MAX_BUCKETS = 100_000

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def _level(self, key: str, rate: Rate, now: float) -> float:
        tokens, at = self._buckets.get(key, (rate.burst, now))
        return min(rate.burst, tokens + max(0.0, now - at) * rate.per_s)

    async def take(self, key: str, rate: Rate) -> Decision:
        now = self._clock()
        tokens = self._level(key, rate, now)
        if len(self._buckets) >= self._MAX_BUCKETS and key not in self._buckets:
            self._evict(now, rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return Decision(True)
        self._buckets[key] = (tokens, now)
        return Decision(False, (1.0 - tokens) / rate.per_s)

    async def peek(self, key: str, rate: Rate) -> Decision:
        tokens = self._level(key, rate, self._clock())
        return Decision(True) if tokens >= 1.0 else Decision(False, (1.0 - tokens) / rate.per_s)

    def _evict(self, now: float, rate: Rate) -> None:
        """Full buckets carry no state: drop them (a full bucket is what a new key gets)."""
        self._buckets = {
            k: (t, at)
            for k, (t, at) in self._buckets.items()
            if t + (now - at) * rate.per_s < rate.burst
        }

    async def aclose(self) -> None:
        pass


# KEYS[1] bucket; ARGV: per_s, burst, take (1) or peek (0). Returns {allowed, retry_after_s}.
_SCRIPT = """
local per_s = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local take = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = burst
  at = now
end
tokens = math.min(burst, tokens + math.max(0, now - at) * per_s)
if tokens >= 1 then
  if take == 1 then
    redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - 1), 'at', tostring(now))
    redis.call('PEXPIRE', KEYS[1], math.ceil(burst / per_s * 1000) + 1000)
  end
  return {1, '0'}
end
if take == 1 then
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
  redis.call('PEXPIRE', KEYS[1], math.ceil(burst / per_s * 1000) + 1000)
end
return {0, tostring((1 - tokens) / per_s)}
"""


class RedisLimiter:
    def __init__(self, url: str, *, prefix: str = "datatorag:rl:", timeout_s: float = 0.5) -> None:
        import redis.asyncio as redis_asyncio

        self._redis: Any = redis_asyncio.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        self._script: Any = self._redis.register_script(_SCRIPT)
        self._prefix = prefix
        self._fallback = MemoryLimiter()
        self._down = False

    async def _run(self, key: str, rate: Rate, take: int) -> Decision:
        from redis.exceptions import RedisError

        try:
            allowed, retry = await self._script(
                keys=[self._prefix + key], args=[rate.per_s, rate.burst, take]
            )
        except (RedisError, OSError) as exc:
            if not self._down:
                log.warning("rate limit store unreachable; limiting per replica", error=str(exc))
                self._down = True
            local = self._fallback.take if take else self._fallback.peek
            return await local(key, rate)
        if self._down:
            log.info("rate limit store reachable again")
            self._down = False
        return Decision(bool(int(allowed)), float(retry))

    async def take(self, key: str, rate: Rate) -> Decision:
        return await self._run(key, rate, 1)

    async def peek(self, key: str, rate: Rate) -> Decision:
        return await self._run(key, rate, 0)

    async def aclose(self) -> None:
        await self._redis.aclose()


def limiter_for(redis_url: str | None) -> Limiter:
    return RedisLimiter(redis_url) if redis_url else MemoryLimiter()
