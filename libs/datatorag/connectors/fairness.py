"""Fair sharing of the connector's work between sources.

``FairLimiter`` hands out a fixed number of global slots round-robin between keys (sources): when
a huge initial sync has thousands of documents waiting and a small source has one, the small
source's document gets the very next free slot instead of queueing behind the backlog. Each sync
also caps its own in-flight documents (``Source.max_concurrency``), so one source can never hold
every slot either.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class FairLimiter:
    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError(f"slots must be >= 1, got {slots}")
        self.slots = slots
        self._free = slots
        self._waiters: dict[str, deque[asyncio.Future[None]]] = {}
        self._rotation: deque[str] = deque()  # keys with waiters, next to serve first

    @property
    def in_use(self) -> int:
        return self.slots - self._free

    def waiting(self, key: str | None = None) -> int:
        if key is not None:
            return len(self._waiters.get(key, ()))
        return sum(len(q) for q in self._waiters.values())

    async def acquire(self, key: str) -> None:
        if self._free > 0 and not self._rotation:
            self._free -= 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._waiters.get(key)
        if queue is None:
            queue = self._waiters[key] = deque()
            self._rotation.append(key)
        queue.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # granted and cancelled in the same tick: hand the slot on
            else:
                self._forget(key, fut)
            raise

    def release(self) -> None:
        self._free += 1
        self._wake()

    @asynccontextmanager
    async def slot(self, key: str) -> AsyncIterator[None]:
        await self.acquire(key)
        try:
            yield
        finally:
            self.release()

    def _forget(self, key: str, fut: asyncio.Future[None]) -> None:
        queue = self._waiters.get(key)
        if queue is None:
            return
        with contextlib.suppress(ValueError):
            queue.remove(fut)
        if not queue:
            del self._waiters[key]
            with contextlib.suppress(ValueError):
                self._rotation.remove(key)

    def _wake(self) -> None:
        while self._free > 0 and self._rotation:
            key = self._rotation.popleft()
            queue = self._waiters[key]
            fut = queue.popleft()
            if queue:
                self._rotation.append(key)  # back of the line: one grant per key per round
            else:
                del self._waiters[key]
            if not fut.done():
                self._free -= 1
                fut.set_result(None)


class ServerLimit:
    """How many connections one server gets from this process, across every source using it.

    Several sources (tenants) often share one FTP/SFTP server; when they configure different
    limits the tightest wins, because the server's own cap does not care which tenant asked.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        self.limit = limit
        self.in_use = 0
        self.peak = 0
        self._cond = asyncio.Condition()

    def tighten(self, limit: int) -> None:
        self.limit = min(self.limit, limit)

    async def __aenter__(self) -> None:
        async with self._cond:
            await self._cond.wait_for(lambda: self.in_use < self.limit)
            self.in_use += 1
            self.peak = max(self.peak, self.in_use)

    async def __aexit__(self, *exc: object) -> None:
        async with self._cond:
            self.in_use -= 1
            self._cond.notify()


# One limit per (event loop, server): it holds across every source pointed at the same server.
_server_limits: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str, str, int], ServerLimit]
] = weakref.WeakKeyDictionary()


def server_limit(host: str, port: int, limit: int, *, scheme: str = "") -> ServerLimit:
    """The connection limit of ``scheme://host:port`` in this event loop (tightest limit wins)."""
    per_loop = _server_limits.setdefault(asyncio.get_running_loop(), {})
    key = (scheme, host.lower(), port)
    entry = per_loop.get(key)
    if entry is None:
        entry = per_loop[key] = ServerLimit(limit)
    else:
        entry.tighten(limit)
    return entry
