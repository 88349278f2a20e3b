"""Queue port: at-least-once delivery with visibility timeout, receive count and a DLQ (SQS
semantics)."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class QueueMessage:
    id: str
    receipt: str  # opaque handle for ack/extend/release; changes on every receive
    body: str
    receive_count: int  # 1 on first delivery
    attributes: dict[str, str] = field(default_factory=dict)


class Queue(abc.ABC):
    """One named queue with its dead-letter queue.

    Contract (checked by ``datatorag.testing.conformance.queue``, which ``tests/conformance``
    runs against every adapter):

    * ``send``/``send_batch`` make the message durable before returning.
    * ``send_batch`` takes any number of bodies and returns their ids in the order of the bodies.
      An adapter whose backend caps a batch splits it into backend-sized calls (SQS: 10 entries
      and 256 KiB per ``SendMessageBatch``; the embedded adapter writes 10 per transaction, the
      same granularity), so callers never chunk. A failure part-way may leave the earlier calls'
      messages sent: retrying the whole batch is safe under at-least-once delivery.
    * ``receive`` returns at most ``max_messages`` (<= 10) visible messages, waiting up to
      ``wait_s`` for the first; each returned message is invisible to other receivers for
      ``visibility_timeout_s`` (default: the queue's), and its ``receive_count`` is incremented.
    * A message received more than ``max_receives`` times is moved to the DLQ instead of being
      delivered again (SQS redrive policy).
    * ``ack`` deletes it. An unknown or stale receipt raises nothing (SQS behaviour: after a
      redelivery only the newest receipt is guaranteed to delete).
    * ``extend`` resets its invisibility to ``visibility_timeout_s`` from now (heartbeat).
    * ``release`` makes it visible again after ``delay_s`` (0 = now) without deleting it.
    * ``dead_letter`` moves it to the DLQ now, with ``reason`` kept as a message attribute.
    * ``dlq_name`` names the dead-letter queue (never ``name`` itself).
    * ``redrive_dlq(ids)`` moves the DLQ's messages (all, or those whose ``id`` is in ``ids``)
      back to the queue, where they are delivered again with their receive count starting
      over; ``purge_dlq(ids)`` deletes them. Both return how many messages they moved/deleted,
      ignore unknown ids and are idempotent: a second call finds nothing left to do. (SQS: a
      crash between the send and the DLQ delete can deliver one message twice; every consumer
      is idempotent.)
    * Messages survive a process restart (embedded) / are server side (SQS); the in-memory
      test double (``datatorag.testing.memory``) keeps them as long as its object lives.
    """

    name: str
    max_receives: int
    visibility_timeout_s: int

    @property
    @abc.abstractmethod
    def dlq_name(self) -> str:
        """Name of this queue's dead-letter queue (``<name><dlq_suffix>``, ``-dlq`` by default):
        where ``dead_letter`` and the redrive put messages, and the label its depth is reported
        under. Differs from ``name`` and is fixed for the queue's lifetime."""

    @abc.abstractmethod
    async def send(self, body: str, *, delay_s: int = 0) -> str: ...

    async def send_batch(self, bodies: Sequence[str]) -> list[str]:
        """Send every body (any number; see the contract above); ids in the order of ``bodies``."""
        return [await self.send(b) for b in bodies]

    @abc.abstractmethod
    async def receive(
        self,
        max_messages: int = 10,
        *,
        wait_s: float = 0.0,
        visibility_timeout_s: int | None = None,
    ) -> list[QueueMessage]: ...

    @abc.abstractmethod
    async def ack(self, message: QueueMessage) -> None: ...

    async def ack_batch(self, messages: Sequence[QueueMessage]) -> None:
        for m in messages:
            await self.ack(m)

    @abc.abstractmethod
    async def extend(self, message: QueueMessage, visibility_timeout_s: int) -> None: ...

    @abc.abstractmethod
    async def release(self, message: QueueMessage, *, delay_s: int = 0) -> None: ...

    @abc.abstractmethod
    async def dead_letter(self, message: QueueMessage, reason: str) -> None: ...

    @abc.abstractmethod
    async def depth(self) -> int:
        """Approximate number of messages waiting (visible + in flight), DLQ excluded."""

    @abc.abstractmethod
    async def dlq_depth(self) -> int:
        """Approximate number of messages in the DLQ (for metrics and alerts; changes nothing)."""

    @abc.abstractmethod
    async def dlq_messages(self, max_messages: int = 10) -> list[QueueMessage]:
        """Peek at (receive from) the DLQ, for operators and tests."""

    @abc.abstractmethod
    async def redrive_dlq(self, ids: Sequence[str] | None = None) -> int:
        """Move DLQ messages (all, or those in ``ids``) back to the queue; how many moved."""

    @abc.abstractmethod
    async def purge_dlq(self, ids: Sequence[str] | None = None) -> int:
        """Delete DLQ messages (all, or those in ``ids``); how many were deleted."""

    @abc.abstractmethod
    async def check(self) -> None:
        """Raise ``DependencyError`` when the queue (or its DLQ) is missing, unreachable, or its
        receive path fails. It runs as much of that path as it can without consuming anything
        (SQLite: the claim itself, rolled back; SQS: the queue and DLQ attributes, since a real
        receive would spend a message's receive count)."""

    async def close(self) -> None:  # optional hook
        pass
