"""Fair sharing of the connector's work between sources.

``FairLimiter`` hands out a fixed number of global slots round-robin between keys (sources): when
a huge initial sync has thousands of documents waiting and a small source has one, the small
source's document gets the very next free slot instead of queueing behind the backlog. Each sync
also caps its own in-flight documents (``Source.max_concurrency``), so one source can never hold
every slot either.
"""

from __future__ import annotations

import asyncio
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
        try:
            queue.remove(fut)
        except ValueError:
            pass
        if not queue:
            del self._waiters[key]
            try:
                self._rotation.remove(key)
            except ValueError:
                pass

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


# One semaphore per (event loop, server): a connection limit that holds across every source
# pointed at the same server.
_server_limits: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str, str, int], asyncio.Semaphore]
] = weakref.WeakKeyDictionary()


def server_semaphore(host: str, port: int, limit: int, *, scheme: str = "") -> asyncio.Semaphore:
    """The connection limit of ``host:port``; the first source to ask sets it."""
    per_loop = _server_limits.setdefault(asyncio.get_running_loop(), {})
    key = (scheme, host.lower(), port)
    if key not in per_loop:
        per_loop[key] = asyncio.Semaphore(limit)
    return per_loop[key]
