"""Conformance suite of the ``Queue`` port (``datatorag.ports.queue``).

Reuse it for any adapter, in this repository or outside it: write a test module that star-imports
this module and provides a fixture named ``queue`` yielding a fresh, empty queue of the adapter
under test (and closing it afterwards)::

    import pytest

    from datatorag.testing.conformance.queue import *  # noqa: F403

    @pytest.fixture
    async def queue(tmp_path):
        adapter = MyQueue(..., visibility_timeout_s=2, max_receives=3)
        yield adapter
        await adapter.close()

pytest collects the imported test functions as if they were written in that module. ``__all__``
lists every test function of the suite plus ``pytestmark`` (its timeout: pytest reads marks from
the test module, so the star-import carries them along); the helpers stay private. The tests are
``async def`` and need pytest-asyncio (``asyncio_mode = "auto"``, or add ``pytest.mark.asyncio``
to your module's ``pytestmark``) and pytest-timeout. Keep the visibility timeout small (a few
seconds): several tests wait for it to pass.

Adapter-agnostic: receives loop until the expected messages arrive (SQS may return fewer than
are visible), visibility timeouts are whole seconds, and the DLQ is read by accumulating what
``dlq_messages`` returns (an SQS adapter receives from the DLQ, which hides what it returned).
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from datatorag.ports import Queue, QueueMessage

__all__ = [
    "pytestmark",
    "test_ack_batch_deletes_all",
    "test_ack_deletes_the_message",
    "test_check_passes",
    "test_check_takes_no_message_and_counts_no_receive",
    "test_concurrent_receivers_never_share_a_message",
    "test_dead_letter_moves_now_and_keeps_reason",
    "test_depth_counts_visible_and_in_flight",
    "test_dlq_is_empty_for_a_healthy_queue",
    "test_dlq_name_names_the_dead_letter_queue",
    "test_empty_queue_returns_nothing_after_waiting",
    "test_extend_keeps_the_message_invisible",
    "test_long_poll_returns_a_message_sent_while_waiting",
    "test_message_received_more_than_max_receives_goes_to_dlq",
    "test_newest_receipt_deletes_after_redelivery_and_stale_ack_is_silent",
    "test_purge_dlq_deletes_the_selected_messages_and_is_idempotent",
    "test_receive_honours_max_messages",
    "test_received_message_is_invisible_until_timeout",
    "test_redrive_dlq_moves_messages_back_and_is_idempotent",
    "test_release_makes_it_visible_now_without_deleting",
    "test_release_with_delay_hides_it_for_the_delay",
    "test_send_batch_delivers_every_body_once",
    "test_send_batch_of_more_than_ten_delivers_every_body_once",
    "test_send_batch_of_nothing_returns_nothing",
    "test_send_then_receive_round_trips_body",
    "test_send_with_delay_is_invisible_at_first",
    "test_unknown_receipt_ack_raises_nothing",
]

pytestmark = pytest.mark.timeout(60)


def _body(tag: str = "m") -> str:
    return f"{tag}-{uuid.uuid4().hex}"


async def _receive_n(
    queue: Queue, n: int, *, timeout_s: float = 10.0, visibility_timeout_s: int | None = None
) -> list[QueueMessage]:
    """Receive until ``n`` messages arrived or ``timeout_s`` passed."""
    got: list[QueueMessage] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < n and time.monotonic() < deadline:
        got += await queue.receive(
            min(10, n - len(got)), wait_s=1, visibility_timeout_s=visibility_timeout_s
        )
    return got


async def _dlq_until(
    queue: Queue, ids: set[str], *, timeout_s: float = 10.0
) -> dict[str, QueueMessage]:
    seen: dict[str, QueueMessage] = {}
    deadline = time.monotonic() + timeout_s
    while not ids <= set(seen) and time.monotonic() < deadline:
        for m in await queue.dlq_messages(10):
            seen.setdefault(m.id, m)
        if not ids <= set(seen):
            await asyncio.sleep(0.2)
    return seen


async def test_check_passes(queue: Queue) -> None:
    await queue.check()
    assert queue.name
    assert queue.max_receives >= 1
    assert isinstance(queue.visibility_timeout_s, int) and queue.visibility_timeout_s >= 1


async def test_check_takes_no_message_and_counts_no_receive(queue: Queue) -> None:
    """``check`` runs as much of the receive path as it can without consuming anything."""
    body = _body()
    await queue.send(body)
    await queue.check()
    await queue.check()
    (got,) = await _receive_n(queue, 1)
    assert (got.body, got.receive_count) == (body, 1)
    await queue.ack(got)


async def test_dlq_name_names_the_dead_letter_queue(queue: Queue) -> None:
    name = queue.dlq_name
    assert isinstance(name, str) and name
    assert name != queue.name  # the DLQ is a queue of its own, never the queue itself
    assert queue.dlq_name == name  # fixed for the queue's lifetime (a metrics label)


async def test_send_then_receive_round_trips_body(queue: Queue) -> None:
    body = _body() + " ünïcode ✓ " + "x" * 1000
    msg_id = await queue.send(body)
    assert isinstance(msg_id, str) and msg_id
    [m] = await _receive_n(queue, 1)
    assert m.id == msg_id
    assert m.body == body
    assert m.receive_count == 1
    assert m.receipt


async def test_send_batch_delivers_every_body_once(queue: Queue) -> None:
    bodies = [_body(str(i)) for i in range(7)]
    ids = await queue.send_batch(bodies)
    assert len(ids) == len(set(ids)) == 7
    got = await _receive_n(queue, 7, visibility_timeout_s=30)
    assert sorted(m.body for m in got) == sorted(bodies)
    assert {m.id for m in got} == set(ids)
    assert await queue.receive(10, wait_s=0) == []


async def test_send_batch_of_more_than_ten_delivers_every_body_once(queue: Queue) -> None:
    # More than one SQS batch (10 entries): the adapter splits, the caller never has to.
    bodies = [_body(str(i)) for i in range(25)]
    ids = await queue.send_batch(bodies)
    assert len(ids) == len(set(ids)) == 25
    got = await _receive_n(queue, 25, timeout_s=20, visibility_timeout_s=30)
    assert len(got) == 25
    assert len({m.id for m in got}) == 25, "a message was delivered twice"
    # ids come back in the order of the bodies: ids[i] is the id of bodies[i]
    assert {m.id: m.body for m in got} == dict(zip(ids, bodies, strict=True))
    assert await queue.receive(10, wait_s=0) == []


async def test_send_batch_of_nothing_returns_nothing(queue: Queue) -> None:
    assert await queue.send_batch([]) == []
    assert await queue.depth() == 0


async def test_receive_honours_max_messages(queue: Queue) -> None:
    await queue.send_batch([_body() for _ in range(5)])
    got = await queue.receive(2, wait_s=1, visibility_timeout_s=30)
    assert 1 <= len(got) <= 2


async def test_empty_queue_returns_nothing_after_waiting(queue: Queue) -> None:
    started = time.monotonic()
    assert await queue.receive(10, wait_s=1) == []
    assert time.monotonic() - started >= 0.9  # it waited, rather than returning at once


async def test_long_poll_returns_a_message_sent_while_waiting(queue: Queue) -> None:
    waiting = asyncio.create_task(queue.receive(1, wait_s=10))
    await asyncio.sleep(0.5)
    assert not waiting.done()
    started = time.monotonic()
    body = _body()
    await queue.send(body)
    got = await waiting
    assert [m.body for m in got] == [body]
    assert time.monotonic() - started < 8  # woke up for the message, not at the end of the wait


async def test_received_message_is_invisible_until_timeout(queue: Queue) -> None:
    body = _body()
    await queue.send(body)
    [first] = await _receive_n(queue, 1, visibility_timeout_s=1)
    assert await queue.receive(10, wait_s=0) == []
    [again] = await _receive_n(queue, 1)  # visible again once the timeout has passed
    assert again.id == first.id and again.body == body
    assert again.receive_count == 2
    assert again.receipt != first.receipt


async def test_concurrent_receivers_never_share_a_message(queue: Queue) -> None:
    ids = set(await queue.send_batch([_body(str(i)) for i in range(10)]))
    batches = await asyncio.gather(
        *(queue.receive(10, wait_s=1, visibility_timeout_s=30) for _ in range(5))
    )
    got = [m.id for batch in batches for m in batch]
    got += [m.id for m in await _receive_n(queue, 10 - len(got), visibility_timeout_s=30)]
    assert len(got) == len(set(got)), "a message was delivered twice within its visibility timeout"
    assert set(got) == ids


async def test_ack_deletes_the_message(queue: Queue) -> None:
    await queue.send(_body())
    [m] = await _receive_n(queue, 1, visibility_timeout_s=1)
    await queue.ack(m)
    await asyncio.sleep(1.5)
    assert await queue.receive(10, wait_s=1) == []
    assert await queue.depth() == 0


async def test_ack_batch_deletes_all(queue: Queue) -> None:
    await queue.send_batch([_body() for _ in range(4)])
    got = await _receive_n(queue, 4, visibility_timeout_s=1)
    assert len(got) == 4
    await queue.ack_batch(got)
    await asyncio.sleep(1.5)
    assert await queue.receive(10, wait_s=1) == []
    assert await queue.depth() == 0


async def test_unknown_receipt_ack_raises_nothing(queue: Queue) -> None:
    body = _body()
    await queue.send(body)
    bogus = QueueMessage(id=uuid.uuid4().hex, receipt=uuid.uuid4().hex, body="x", receive_count=1)
    await queue.ack(bogus)
    [m] = await _receive_n(queue, 1)
    assert m.body == body  # the real message is untouched


async def test_newest_receipt_deletes_after_redelivery_and_stale_ack_is_silent(
    queue: Queue,
) -> None:
    await queue.send(_body())
    [old] = await _receive_n(queue, 1, visibility_timeout_s=1)
    [new] = await _receive_n(queue, 1, visibility_timeout_s=30)
    assert new.id == old.id and new.receipt != old.receipt
    await queue.ack(old)  # stale: must not raise
    await queue.ack(new)
    assert await queue.depth() == 0


async def test_extend_keeps_the_message_invisible(queue: Queue) -> None:
    await queue.send(_body())
    [m] = await _receive_n(queue, 1, visibility_timeout_s=1)
    await queue.extend(m, 5)
    await asyncio.sleep(2)  # past the original 1 s timeout
    assert await queue.receive(10, wait_s=0) == []
    await queue.ack(m)  # the receipt is still valid after extending
    assert await queue.depth() == 0


async def test_release_makes_it_visible_now_without_deleting(queue: Queue) -> None:
    body = _body()
    await queue.send(body)
    [m] = await _receive_n(queue, 1, visibility_timeout_s=30)
    await queue.release(m)
    [again] = await _receive_n(queue, 1, timeout_s=5, visibility_timeout_s=30)
    assert again.id == m.id and again.body == body
    assert again.receive_count == 2


async def test_release_with_delay_hides_it_for_the_delay(queue: Queue) -> None:
    await queue.send(_body())
    [m] = await _receive_n(queue, 1, visibility_timeout_s=30)
    await queue.release(m, delay_s=2)
    assert await queue.receive(10, wait_s=0) == []
    [again] = await _receive_n(queue, 1, timeout_s=6)
    assert again.id == m.id


async def test_send_with_delay_is_invisible_at_first(queue: Queue) -> None:
    body = _body()
    await queue.send(body, delay_s=2)
    assert await queue.receive(10, wait_s=0) == []
    [m] = await _receive_n(queue, 1, timeout_s=8)
    assert m.body == body and m.receive_count == 1


async def test_depth_counts_visible_and_in_flight(queue: Queue) -> None:
    await queue.send_batch([_body() for _ in range(3)])
    assert await queue.depth() == 3
    got = await _receive_n(queue, 2, visibility_timeout_s=30)
    assert len(got) == 2
    assert await queue.depth() == 3  # in flight still counts
    await queue.ack(got[0])
    assert await queue.depth() == 2


async def test_message_received_more_than_max_receives_goes_to_dlq(queue: Queue) -> None:
    body = _body("poison")
    msg_id = await queue.send(body)
    for attempt in range(1, queue.max_receives + 1):
        [m] = await _receive_n(queue, 1, visibility_timeout_s=30)
        assert m.id == msg_id and m.receive_count == attempt
        await queue.release(m)
    # The next receive would be delivery max_receives + 1: it moves to the DLQ instead.
    assert await queue.receive(10, wait_s=2) == []
    dlq = await _dlq_until(queue, {msg_id})
    assert dlq[msg_id].body == body
    assert await queue.depth() == 0


async def test_dead_letter_moves_now_and_keeps_reason(queue: Queue) -> None:
    keep, poison = _body("keep"), _body("poison")
    await queue.send_batch([keep, poison])
    got = await _receive_n(queue, 2, visibility_timeout_s=1)
    bad = next(m for m in got if m.body == poison)
    await queue.dead_letter(bad, "corrupt pdf: no xref table")
    dlq = await _dlq_until(queue, {bad.id})
    assert dlq[bad.id].body == poison
    assert dlq[bad.id].attributes.get("reason") == "corrupt pdf: no xref table"
    # Only the good message comes back after the visibility timeout.
    [again] = await _receive_n(queue, 1, timeout_s=5, visibility_timeout_s=30)
    assert again.body == keep
    assert await queue.receive(10, wait_s=1) == []
    assert await queue.depth() == 1
    assert await queue.dlq_depth() == 1


async def test_dlq_is_empty_for_a_healthy_queue(queue: Queue) -> None:
    await queue.send(_body())
    [m] = await _receive_n(queue, 1)
    await queue.ack(m)
    assert await queue.dlq_messages(10) == []
    assert await queue.dlq_depth() == 0


async def _dead_letter_all(queue: Queue, bodies: list[str]) -> dict[str, str]:
    """Send ``bodies`` and dead-letter each; body -> id in the DLQ."""
    await queue.send_batch(bodies)
    got = await _receive_n(queue, len(bodies), visibility_timeout_s=30)
    assert sorted(m.body for m in got) == sorted(bodies)
    for m in got:
        await queue.dead_letter(m, f"reason of {m.body}")
    dlq = await _dlq_until(queue, {m.id for m in got})
    assert len(dlq) == len(bodies)
    return {m.body: m.id for m in dlq.values()}


async def test_redrive_dlq_moves_messages_back_and_is_idempotent(queue: Queue) -> None:
    a, b, c = _body("a"), _body("b"), _body("c")
    ids = await _dead_letter_all(queue, [a, b, c])
    assert await queue.redrive_dlq([ids[a], "no-such-id"]) == 1
    [back] = await _receive_n(queue, 1, visibility_timeout_s=30)
    assert back.body == a and back.receive_count == 1  # the count starts over
    assert "reason" not in back.attributes
    await queue.ack(back)
    assert await queue.redrive_dlq([ids[a]]) == 0  # already moved: nothing to do
    assert await queue.redrive_dlq() == 2
    rest = await _receive_n(queue, 2, visibility_timeout_s=30)
    assert sorted(m.body for m in rest) == sorted([b, c])
    await queue.ack_batch(rest)
    assert await queue.redrive_dlq() == 0
    assert await queue.redrive_dlq([]) == 0
    assert await queue.dlq_messages(10) == []


async def test_purge_dlq_deletes_the_selected_messages_and_is_idempotent(queue: Queue) -> None:
    x, y = _body("x"), _body("y")
    ids = await _dead_letter_all(queue, [x, y])
    assert await queue.purge_dlq([ids[x]]) == 1
    left = await _dlq_until(queue, {ids[y]})
    assert set(left) == {ids[y]}
    assert await queue.purge_dlq([ids[x]]) == 0
    assert await queue.purge_dlq() == 1
    assert await queue.purge_dlq() == 0
    assert await queue.dlq_messages(10) == []
    assert await queue.receive(10, wait_s=1) == []  # purged, not redriven
