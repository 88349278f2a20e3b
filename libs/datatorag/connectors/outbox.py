"""The sync's outbox: messages to the parse queue, sent in batches of up to 10.

A message is buffered only after its version is in the registry, and the buffer is flushed within
``max_wait_s`` (or when full, or when the run ends): a crash loses at most the buffered messages,
and the next sync re-sends those (see ``datatorag.connectors.sync``), so batching trades nothing
but a few milliseconds of latency for a tenth of the queue round trips (SQS ``SendMessageBatch``).
"""

from __future__ import annotations

import asyncio
import contextlib

from datatorag.ports.queue import Queue


class Outbox:
    """Buffers message bodies for ``queue`` and sends them in order, in batches.

    A send that fails in the background is raised by the next ``put`` or by ``close``.
    """

    def __init__(self, queue: Queue, *, max_batch: int = 10, max_wait_s: float = 0.05) -> None:
        self.queue = queue
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.sent = 0
        self._buffer: list[str] = []
        self._lock = asyncio.Lock()
        self._timer: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()
        self._error: BaseException | None = None

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    async def put(self, body: str) -> None:
        self._raise()
        self._buffer.append(body)
        if len(self._buffer) >= self.max_batch:
            await self._flush()
        elif self._timer is None or self._timer.done():
            self._timer = asyncio.create_task(self._flush_later())

    async def _flush_later(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), self.max_wait_s)
        try:
            await self._flush()
        except Exception as exc:  # noqa: BLE001 - surfaced by the next put/close
            self._error = exc

    async def _flush(self) -> None:
        async with self._lock:  # one flush at a time keeps the order of the messages
            while self._buffer:
                batch = self._buffer[: self.max_batch]
                del self._buffer[: self.max_batch]
                await self.queue.send_batch(batch)
                self.sent += len(batch)

    async def close(self) -> None:
        """Send everything still buffered; raise the first send that failed."""
        # Wake the timer rather than cancel it: cancelled mid-send, it would drop a batch that
        # has already left the buffer, and the run would still be recorded "ok".
        self._closing.set()
        if self._timer is not None:
            await asyncio.gather(self._timer, return_exceptions=True)
        await self._flush()
        self._raise()
