"""``Queue`` in memory, with the embedded SQLite adapter's semantics (which are SQS's).

* ``receive`` hands out visible messages oldest first (by when they became visible, then by
  send order), each with a fresh receipt, and hides them for the visibility timeout.
* A message whose receive count has reached ``max_receives`` is moved to the DLQ by the receive
  that would deliver it once more (SQS redrive).
* ``ack``, ``extend`` and ``release`` act only with the newest receipt; a stale or unknown one is
  ignored. ``dead_letter`` moves the message (by id) to the DLQ with the reason as an attribute.
* ``send_batch`` takes any number of bodies, all at once (no backend cap to split for).
* Long polling: a ``send`` or ``release`` wakes waiting receivers at once; a message that becomes
  visible as time passes is noticed within ``poll_interval_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from datatorag.ports.queue import Queue, QueueMessage
from datatorag.testing.memory.clock import Clock

MAX_BATCH = 10  # SQS limit for one receive
MAX_VISIBILITY_S = 43_200  # SQS limit: 12 hours
MAX_DELAY_S = 900  # SQS limit: 15 minutes
MAX_WAIT_S = 20  # SQS limit of one long poll


@dataclass
class _Stored:
    seq: int
    id: str
    body: str
    visible_at: float
    attributes: dict[str, str] = field(default_factory=dict)
    receive_count: int = 0
    receipt: str | None = None

    def message(self, receipt: str) -> QueueMessage:
        return QueueMessage(
            id=self.id,
            receipt=receipt,
            body=self.body,
            receive_count=self.receive_count,
            attributes=dict(self.attributes),
        )


@dataclass(eq=False)  # hashed by identity: each waiter is its own entry
class _Waiter:
    loop: asyncio.AbstractEventLoop
    event: asyncio.Event


class MemoryQueue(Queue):
    def __init__(
        self,
        name: str = "queue",
        visibility_timeout_s: int = 30,
        max_receives: int = 5,
        *,
        dlq_suffix: str = "-dlq",
        clock: Clock = time.monotonic,
        poll_interval_s: float = 0.02,
    ) -> None:
        if not name:
            raise ValueError("queue name must not be empty")
        if not dlq_suffix:
            raise ValueError("dlq_suffix must not be empty (the DLQ needs a name of its own)")
        _check_int("visibility_timeout_s", visibility_timeout_s, 0, MAX_VISIBILITY_S)
        _check_int("max_receives", max_receives, 1, 1000)
        if poll_interval_s <= 0:
            raise ValueError(f"poll_interval_s must be > 0, got {poll_interval_s}")
        self.name = name
        self.visibility_timeout_s = visibility_timeout_s
        self.max_receives = max_receives
        self.poll_interval_s = poll_interval_s
        self._dlq_name = f"{name}{dlq_suffix}"
        self._clock = clock
        self._seq = 0
        self._messages: dict[str, _Stored] = {}  # the queue: visible, delayed and in flight
        self._dlq: dict[str, _Stored] = {}  # in the order they were dead-lettered
        self._waiters: set[_Waiter] = set()

    @property
    def dlq_name(self) -> str:
        return self._dlq_name

    # -- sending ---------------------------------------------------------------------------
    async def send(self, body: str, *, delay_s: int = 0) -> str:
        _check_int("delay_s", delay_s, 0, MAX_DELAY_S)
        _check_bodies([body])
        await asyncio.sleep(0)
        return self._insert([body], delay_s)[0]

    async def send_batch(self, bodies: Sequence[str]) -> list[str]:
        bodies = list(bodies)
        _check_bodies(bodies)
        await asyncio.sleep(0)
        return self._insert(bodies, 0) if bodies else []

    def _insert(self, bodies: list[str], delay_s: int) -> list[str]:
        now = self._clock()
        ids = []
        for body in bodies:
            self._seq += 1
            stored = _Stored(
                seq=self._seq, id=uuid.uuid4().hex, body=body, visible_at=now + delay_s
            )
            self._messages[stored.id] = stored
            ids.append(stored.id)
        self._notify()
        return ids

    # -- receiving -------------------------------------------------------------------------
    async def receive(
        self,
        max_messages: int = 10,
        *,
        wait_s: float = 0.0,
        visibility_timeout_s: int | None = None,
    ) -> list[QueueMessage]:
        _check_int("max_messages", max_messages, 1, MAX_BATCH)
        if not 0 <= wait_s <= MAX_WAIT_S:
            raise ValueError(f"wait_s must be within 0..{MAX_WAIT_S}, got {wait_s}")
        vt = self.visibility_timeout_s if visibility_timeout_s is None else visibility_timeout_s
        _check_int("visibility_timeout_s", vt, 0, MAX_VISIBILITY_S)
        await asyncio.sleep(0)
        deadline = time.monotonic() + wait_s  # the caller waits in real time, whatever the clock
        waiter = _Waiter(asyncio.get_running_loop(), asyncio.Event())
        self._waiters.add(waiter)
        try:
            while True:
                waiter.event.clear()
                got = self._claim(max_messages, vt)
                remaining = deadline - time.monotonic()
                if got or remaining <= 0:
                    return got
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        waiter.event.wait(), timeout=min(self.poll_interval_s, remaining)
                    )
        finally:
            self._waiters.discard(waiter)

    def _claim(self, limit: int, vt: int) -> list[QueueMessage]:
        now = self._clock()
        ready = sorted(
            (m for m in self._messages.values() if m.visible_at <= now),
            key=lambda m: (m.visible_at, m.seq),
        )
        out: list[QueueMessage] = []
        for stored in ready:
            if len(out) == limit:
                break
            if stored.receive_count >= self.max_receives:
                # Redrive: it was delivered max_receives times and never acknowledged.
                self._to_dlq(stored, now)
                continue
            stored.receive_count += 1
            stored.receipt = uuid.uuid4().hex
            stored.visible_at = now + vt
            out.append(stored.message(stored.receipt))
        return out

    # -- settling --------------------------------------------------------------------------
    def _held(self, message: QueueMessage) -> _Stored | None:
        """The stored message when ``message`` carries its newest receipt."""
        stored = self._messages.get(message.id)
        if stored is None or stored.receipt is None or stored.receipt != message.receipt:
            return None
        return stored

    async def ack(self, message: QueueMessage) -> None:
        await asyncio.sleep(0)
        if self._held(message) is not None:
            del self._messages[message.id]

    async def ack_batch(self, messages: Sequence[QueueMessage]) -> None:
        await asyncio.sleep(0)
        for message in messages:
            if self._held(message) is not None:
                del self._messages[message.id]

    async def extend(self, message: QueueMessage, visibility_timeout_s: int) -> None:
        _check_int("visibility_timeout_s", visibility_timeout_s, 0, MAX_VISIBILITY_S)
        await asyncio.sleep(0)
        if (stored := self._held(message)) is not None:
            stored.visible_at = self._clock() + visibility_timeout_s

    async def release(self, message: QueueMessage, *, delay_s: int = 0) -> None:
        _check_int("delay_s", delay_s, 0, MAX_VISIBILITY_S)
        await asyncio.sleep(0)
        if (stored := self._held(message)) is not None:
            stored.visible_at = self._clock() + delay_s
            if delay_s == 0:
                self._notify()

    async def dead_letter(self, message: QueueMessage, reason: str) -> None:
        await asyncio.sleep(0)
        stored = self._messages.get(message.id)
        if stored is not None:
            stored.attributes["reason"] = reason
            self._to_dlq(stored, self._clock())

    def _to_dlq(self, stored: _Stored, now: float) -> None:
        del self._messages[stored.id]
        stored.receipt = None
        stored.visible_at = now
        self._dlq[stored.id] = stored

    # -- inspection ------------------------------------------------------------------------
    async def depth(self) -> int:
        await asyncio.sleep(0)
        return len(self._messages)

    async def dlq_depth(self) -> int:
        await asyncio.sleep(0)
        return len(self._dlq)

    async def dlq_messages(self, max_messages: int = 10) -> list[QueueMessage]:
        """Peek: DLQ messages are returned without changing them (oldest first)."""
        if max_messages < 1:
            raise ValueError(f"max_messages must be >= 1, got {max_messages}")
        await asyncio.sleep(0)
        return [m.message(f"dlq:{m.id}") for m in list(self._dlq.values())[:max_messages]]

    # -- dead letters ----------------------------------------------------------------------
    def _dlq_selected(self, ids: Sequence[str] | None) -> list[_Stored]:
        wanted = None if ids is None else set(ids)
        return [m for m in self._dlq.values() if wanted is None or m.id in wanted]

    async def redrive_dlq(self, ids: Sequence[str] | None = None) -> int:
        await asyncio.sleep(0)
        moved = self._dlq_selected(ids)
        now = self._clock()
        for stored in moved:
            del self._dlq[stored.id]
            stored.attributes.pop("reason", None)
            stored.receive_count = 0
            stored.visible_at = now
            self._messages[stored.id] = stored
        if moved:
            self._notify()
        return len(moved)

    async def purge_dlq(self, ids: Sequence[str] | None = None) -> int:
        await asyncio.sleep(0)
        gone = self._dlq_selected(ids)
        for stored in gone:
            del self._dlq[stored.id]
        return len(gone)

    async def check(self) -> None:
        await asyncio.sleep(0)

    # -- long polling ----------------------------------------------------------------------
    def _notify(self) -> None:
        for w in list(self._waiters):
            with contextlib.suppress(RuntimeError):  # that loop has closed; its receiver is gone
                w.loop.call_soon_threadsafe(w.event.set)


def _check_bodies(bodies: Sequence[object]) -> None:
    for body in bodies:
        if not isinstance(body, str):
            raise TypeError(f"message body must be str, got {type(body).__name__}")


def _check_int(name: str, value: object, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int (SQS takes whole seconds), got {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be within {lo}..{hi}, got {value}")
