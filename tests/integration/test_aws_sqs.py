"""SqsQueue against a real moto server: batching, heartbeats, redrive wiring, health checks."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from datatorag.adapters.aws.provision import ensure_queue
from datatorag.adapters.aws.session import AwsClients
from datatorag.adapters.aws.sqs_queue import SqsQueue
from datatorag.domain.errors import DependencyError
from datatorag.ports import QueueMessage

pytestmark = [pytest.mark.aws, pytest.mark.timeout(60)]


@pytest.fixture
async def clients(moto_server) -> AsyncIterator[AwsClients]:
    clients = moto_server.clients()
    yield clients
    await clients.close()


async def _queue(clients: AwsClients, **kw: Any) -> SqsQueue:
    name = f"it-{uuid.uuid4().hex[:16]}"
    options = {"visibility_timeout_s": 2, "max_receives": 3, "wait_time_s": 0, **kw}
    await ensure_queue(clients, name, dlq_suffix="-dlq", **options)
    return SqsQueue(name, clients=clients, dlq_suffix="-dlq", **options)


async def _calls(clients: AwsClients, operation: str) -> list[int]:
    """Record the number of entries of every ``operation`` call the SQS client makes."""
    sizes: list[int] = []
    sqs = await clients.client("sqs")

    def count(params: dict[str, Any], **_: Any) -> None:
        sizes.append(len(params["Entries"]))

    sqs.meta.events.register(f"provide-client-params.sqs.{operation}", count)
    return sizes


async def _receive_all(queue: SqsQueue, n: int, **kw: Any) -> list[QueueMessage]:
    got: list[QueueMessage] = []
    for _ in range(20):
        if len(got) >= n:
            break
        got += await queue.receive(10, wait_s=1, **kw)
    return got


async def test_batch_of_25_goes_out_and_is_deleted_in_calls_of_10(clients: AwsClients) -> None:
    queue = await _queue(clients)
    sends = await _calls(clients, "SendMessageBatch")
    deletes = await _calls(clients, "DeleteMessageBatch")
    bodies = [f"doc-{i}-{uuid.uuid4().hex}" for i in range(25)]

    ids = await queue.send_batch(bodies)

    assert sends == [10, 10, 5]
    assert len(ids) == len(set(ids)) == 25
    assert await queue.depth() == 25
    got = await _receive_all(queue, 25, visibility_timeout_s=30)
    assert sorted(m.body for m in got) == sorted(bodies)
    assert {m.id for m in got} == set(ids)  # ids returned in the order of the bodies sent
    await queue.ack_batch(got)
    assert deletes == [10, 10, 5]
    assert await queue.depth() == 0


async def test_large_bodies_are_split_by_the_batch_size_cap(clients: AwsClients) -> None:
    queue = await _queue(clients)
    sends = await _calls(clients, "SendMessageBatch")
    bodies = [f"{i}" + "x" * 100_000 for i in range(5)]  # 2 fit in one 256 KiB batch call

    await queue.send_batch(bodies)

    assert sends == [2, 2, 1]
    got = await _receive_all(queue, 5, visibility_timeout_s=30)
    assert sorted(m.body for m in got) == sorted(bodies)


async def test_heartbeat_keeps_a_message_invisible_past_its_timeout(clients: AwsClients) -> None:
    queue = await _queue(clients, visibility_timeout_s=2)
    await queue.send("long job")
    [m] = await _receive_all(queue, 1)

    async def heartbeat() -> None:
        for _ in range(4):  # 4 s of work, twice the 2 s timeout
            await queue.extend(m, 2)
            await asyncio.sleep(1)

    async def other_consumer() -> list[QueueMessage]:
        seen: list[QueueMessage] = []
        for _ in range(3):
            seen += await queue.receive(10, wait_s=1)
        return seen

    _, stolen = await asyncio.gather(heartbeat(), other_consumer())

    assert stolen == [], "another consumer got the message while its owner was still working"
    await queue.ack(m)
    assert await queue.depth() == 0
    # without the heartbeat the message comes back once the timeout passes
    await queue.send("short job")
    [first] = await _receive_all(queue, 1)
    [again] = await _receive_all(queue, 1)
    assert again.id == first.id and again.receive_count == 2


async def test_provisioned_redrive_moves_poison_to_the_dlq(clients: AwsClients) -> None:
    queue = await _queue(clients, max_receives=2)
    sqs = await clients.client("sqs")
    url = (await sqs.get_queue_url(QueueName=queue.name))["QueueUrl"]
    attrs = (await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"]))["Attributes"]
    policy = json.loads(attrs["RedrivePolicy"])
    assert int(policy["maxReceiveCount"]) == 2
    assert policy["deadLetterTargetArn"].endswith(f":{queue.dlq_name}")
    assert attrs["VisibilityTimeout"] == "2"

    msg_id = await queue.send("poison")
    for _ in range(2):
        [m] = await _receive_all(queue, 1, visibility_timeout_s=30)
        await queue.release(m)
    assert await queue.receive(10, wait_s=1) == []
    [dead] = await queue.dlq_messages()
    assert (dead.id, dead.body) == (msg_id, "poison")
    assert "reason" not in dead.attributes  # SQS moved it, not dead_letter()


async def test_dead_letter_keeps_reason_source_and_id(clients: AwsClients) -> None:
    queue = await _queue(clients)
    msg_id = await queue.send("corrupt.pdf")
    [m] = await _receive_all(queue, 1)
    await queue.dead_letter(m, "no xref table " + "y" * 10_000)
    [dead] = await queue.dlq_messages()
    assert dead.id == msg_id
    assert dead.attributes["source_queue"] == queue.name
    assert dead.attributes["reason"].startswith("no xref table")
    assert len(dead.attributes["reason"]) == 4096  # a huge reason is cut, not rejected
    assert await queue.depth() == 0
    # a peek leaves it there for the operator
    assert [d.id for d in await queue.dlq_messages()] == [msg_id]


async def test_check_names_a_missing_queue(clients: AwsClients) -> None:
    name = f"missing-{uuid.uuid4().hex[:12]}"
    queue = SqsQueue(name, clients=clients)
    with pytest.raises(DependencyError, match=name) as err:
        await queue.check()
    assert "does not exist" in str(err.value)
    with pytest.raises(DependencyError, match=name):
        await queue.send("x")


async def test_check_wants_the_dlq_and_the_redrive_policy(clients: AwsClients) -> None:
    sqs = await clients.client("sqs")
    name = f"bare-{uuid.uuid4().hex[:12]}"
    await sqs.create_queue(QueueName=name)
    queue = SqsQueue(name, clients=clients)
    with pytest.raises(DependencyError, match=f"{name}-dlq"):
        await queue.check()
    await sqs.create_queue(QueueName=f"{name}-dlq")
    with pytest.raises(DependencyError, match="RedrivePolicy"):
        await queue.check()
    await ensure_queue(clients, name)
    await queue.check()


async def test_check_reports_an_unreachable_endpoint(moto_server) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    dead = AwsClients(
        moto_server.connection(endpoint_url=f"http://127.0.0.1:{port}", max_attempts=1)
    )
    queue = SqsQueue("anything", clients=dead)
    try:
        with pytest.raises(DependencyError, match=r"anything.*unreachable"):
            await queue.check()
    finally:
        await dead.close()


async def test_bad_arguments_are_refused(clients: AwsClients) -> None:
    queue = await _queue(clients)
    with pytest.raises(ValueError, match="max_messages"):
        await queue.receive(11)
    with pytest.raises(ValueError, match="delay_s"):
        await queue.send("x", delay_s=901)
    with pytest.raises(ValueError, match="exceeds 262144"):
        await queue.send_batch(["ok", "x" * 300_000])
    assert await queue.depth() == 0  # nothing of a refused batch was sent
    with pytest.raises(ValueError):
        SqsQueue("")
