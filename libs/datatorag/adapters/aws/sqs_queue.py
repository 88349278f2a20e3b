"""``Queue`` on Amazon SQS (standard queues) via aiobotocore.

* The queue and its dead-letter queue (``<name><dlq_suffix>``) are resolved by name once and
  their URLs cached; ``provision.ensure_queue`` creates both with the ``RedrivePolicy`` that makes
  SQS itself move a message to the DLQ once it was received ``max_receives`` times.
* ``receive`` long-polls (``WaitTimeSeconds``) and always passes the visibility timeout, so the
  adapter's ``visibility_timeout_s`` holds whatever the queue's default is.
* Batches go 10 entries per call (the SQS limit), larger ones are chunked: ``send_batch`` takes
  any number of bodies (the port's contract), split into calls of at most 10 entries and 256 KiB.
* ``dead_letter`` sends the body to the DLQ with ``reason`` as a message attribute, then deletes
  the original (at-least-once: a crash in between leaves a duplicate, never a loss).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from typing import Any

from datatorag.adapters.aws.session import (
    AwsClients,
    AwsConnection,
    aws_errors,
    dependency_check,
    error_code,
    is_not_found,
)
from datatorag.config import QueueNames, Settings
from datatorag.domain.errors import DependencyError, TransientError
from datatorag.ports.queue import Queue, QueueMessage

BATCH = 10  # SQS maximum entries per batch call and messages per receive
MAX_WAIT_S = 20  # SQS maximum long-poll wait per call
MAX_BATCH_BYTES = 256 * 1024  # payload cap of one SendMessageBatch call
MAX_MESSAGE_BYTES = 256 * 1024  # messages carry keys, never payloads
MAX_ATTRIBUTE_CHARS = 4096  # keep a long error reason well inside the message size cap
# a stale or foreign receipt: SQS semantics say acknowledging it is not an error
_STALE_RECEIPT = frozenset(
    {
        "ReceiptHandleIsInvalid",
        "InvalidReceiptHandle",
        "AWS.SimpleQueueService.MessageNotInflight",
        "MessageNotInflight",
    }
)
# message attributes of a message we dead-letter
REASON = "reason"
SOURCE_ID = "source_message_id"
SOURCE_QUEUE = "source_queue"


# how long a redrive/purge holds the DLQ messages it received but did not select
_DRAIN_HOLD_S = 120


def _is_stale(exc: BaseException) -> bool:
    code = error_code(exc)
    if code in _STALE_RECEIPT:
        return True
    # real SQS answers an expired handle with InvalidParameterValue naming the ReceiptHandle
    return code == "InvalidParameterValue" and "receipthandle" in str(exc).lower()


class SqsQueue(Queue):
    def __init__(
        self,
        name: str,
        *,
        clients: AwsClients | AwsConnection | None = None,
        dlq_suffix: str = "-dlq",
        visibility_timeout_s: int = 60,
        max_receives: int = 5,
        wait_time_s: int = 10,
    ) -> None:
        if not name:
            raise ValueError("SQS queue name must not be empty")
        if not dlq_suffix:
            raise ValueError("dlq_suffix must not be empty (the DLQ needs a name of its own)")
        self.name = name
        self._dlq_name = f"{name}{dlq_suffix}"
        self.visibility_timeout_s = visibility_timeout_s
        self.max_receives = max_receives
        # the queue's default long poll (set by provisioning); each receive passes its own wait_s
        self.wait_time_s = wait_time_s
        # shared clients are the caller's to close; a connection (or none) makes our own
        self._owns_clients = not isinstance(clients, AwsClients)
        self._clients = clients if isinstance(clients, AwsClients) else AwsClients(clients)
        self._urls: dict[str, str] = {}

    @classmethod
    def from_settings(
        cls, settings: Settings, name: str, *, clients: AwsClients | None = None
    ) -> SqsQueue:
        q: QueueNames = settings.queues
        return cls(
            name,
            clients=clients or AwsConnection.from_settings(settings),
            dlq_suffix=q.dlq_suffix,
            visibility_timeout_s=q.visibility_timeout_s,
            max_receives=q.max_receives,
            wait_time_s=q.wait_time_s,
        )

    @property
    def dlq_name(self) -> str:
        return self._dlq_name

    # -- plumbing -------------------------------------------------------------------------------

    async def _sqs(self) -> Any:
        return await self._clients.client("sqs")

    async def _url(self, name: str) -> str:
        url = self._urls.get(name)
        if url is None:
            sqs = await self._sqs()
            try:
                async with aws_errors(f"sqs queue {name}"):
                    url = (await sqs.get_queue_url(QueueName=name))["QueueUrl"]
            except Exception as exc:
                if is_not_found(exc):
                    raise DependencyError(f"sqs queue {name}", "does not exist") from exc
                raise
            self._urls[name] = url
        return url

    def _to_message(self, raw: dict[str, Any], *, from_dlq: bool = False) -> QueueMessage:
        attrs = {
            k: v["StringValue"]
            for k, v in (raw.get("MessageAttributes") or {}).items()
            if "StringValue" in v
        }
        system = raw.get("Attributes") or {}
        msg_id = raw["MessageId"]
        if from_dlq and SOURCE_ID in attrs:
            # a message we dead-lettered keeps the id it had (as SQS's own redrive does)
            msg_id = attrs[SOURCE_ID]
        return QueueMessage(
            id=msg_id,
            receipt=raw["ReceiptHandle"],
            body=raw["Body"],
            receive_count=int(system.get("ApproximateReceiveCount", "1")),
            attributes=attrs,
        )

    # -- Queue ----------------------------------------------------------------------------------

    async def send(self, body: str, *, delay_s: int = 0) -> str:
        _check_body(body)
        if not 0 <= delay_s <= 900:
            raise ValueError(f"delay_s must be within 0..900 for SQS, got {delay_s}")
        sqs, url = await self._sqs(), await self._url(self.name)
        async with aws_errors(f"sqs queue {self.name}"):
            resp = await sqs.send_message(QueueUrl=url, MessageBody=body, DelaySeconds=delay_s)
        return str(resp["MessageId"])

    async def send_batch(self, bodies: Sequence[str]) -> list[str]:
        for body in bodies:
            _check_body(body)
        sqs, url = await self._sqs(), await self._url(self.name)
        ids: list[str] = []
        for chunk in _chunks_by_size(list(bodies)):
            entries = [{"Id": str(i), "MessageBody": b} for i, b in enumerate(chunk)]
            async with aws_errors(f"sqs queue {self.name}"):
                resp = await sqs.send_message_batch(QueueUrl=url, Entries=entries)
            failed = resp.get("Failed") or []
            if failed:
                # entries before this chunk are sent; the caller retries (at-least-once)
                first = failed[0]
                raise TransientError(
                    f"sqs queue {self.name}: {len(failed)} of {len(entries)} messages not sent "
                    f"({first.get('Code')}: {first.get('Message')})"
                )
            by_id = {e["Id"]: e["MessageId"] for e in resp.get("Successful") or []}
            ids.extend(by_id[str(i)] for i in range(len(chunk)))
        return ids

    async def receive(
        self,
        max_messages: int = 10,
        *,
        wait_s: float = 0.0,
        visibility_timeout_s: int | None = None,
    ) -> list[QueueMessage]:
        return await self._receive(
            self.name,
            max_messages=max_messages,
            wait_s=wait_s,
            visibility_timeout_s=(
                self.visibility_timeout_s if visibility_timeout_s is None else visibility_timeout_s
            ),
        )

    async def _receive(
        self,
        name: str,
        *,
        max_messages: int,
        wait_s: float,
        visibility_timeout_s: int,
        from_dlq: bool = False,
    ) -> list[QueueMessage]:
        if not 1 <= max_messages <= BATCH:
            raise ValueError(f"max_messages must be within 1..{BATCH}, got {max_messages}")
        if wait_s < 0:
            raise ValueError(f"wait_s must be >= 0, got {wait_s}")
        sqs, url = await self._sqs(), await self._url(name)
        deadline = time.monotonic() + wait_s
        while True:
            remaining = deadline - time.monotonic()
            # SQS waits in whole seconds: round up so a short wait still long-polls
            wait = min(MAX_WAIT_S, max(0, math.ceil(remaining)))
            async with aws_errors(f"sqs queue {name}"):
                resp = await sqs.receive_message(
                    QueueUrl=url,
                    MaxNumberOfMessages=max_messages,
                    WaitTimeSeconds=wait,
                    VisibilityTimeout=visibility_timeout_s,
                    MessageSystemAttributeNames=["ApproximateReceiveCount"],
                    MessageAttributeNames=["All"],
                )
            raw = resp.get("Messages") or []
            if raw or time.monotonic() >= deadline:
                return [self._to_message(m, from_dlq=from_dlq) for m in raw]

    async def ack(self, message: QueueMessage) -> None:
        sqs, url = await self._sqs(), await self._url(self.name)
        try:
            async with aws_errors(f"sqs queue {self.name}"):
                await sqs.delete_message(QueueUrl=url, ReceiptHandle=message.receipt)
        except Exception as exc:
            if not _is_stale(exc):
                raise

    async def ack_batch(self, messages: Sequence[QueueMessage]) -> None:
        sqs, url = await self._sqs(), await self._url(self.name)
        for start in range(0, len(messages), BATCH):
            chunk = messages[start : start + BATCH]
            entries = [{"Id": str(i), "ReceiptHandle": m.receipt} for i, m in enumerate(chunk)]
            async with aws_errors(f"sqs queue {self.name}"):
                resp = await sqs.delete_message_batch(QueueUrl=url, Entries=entries)
            failed = [f for f in resp.get("Failed") or [] if f.get("Code") not in _STALE_RECEIPT]
            if failed:
                raise TransientError(
                    f"sqs queue {self.name}: {len(failed)} deletes failed "
                    f"({failed[0].get('Code')}: {failed[0].get('Message')})"
                )

    async def _set_visibility(self, message: QueueMessage, seconds: int, what: str) -> None:
        if not 0 <= seconds <= 43200:
            raise ValueError(f"{what} must be within 0..43200 seconds, got {seconds}")
        sqs, url = await self._sqs(), await self._url(self.name)
        try:
            async with aws_errors(f"sqs queue {self.name}"):
                await sqs.change_message_visibility(
                    QueueUrl=url, ReceiptHandle=message.receipt, VisibilityTimeout=seconds
                )
        except Exception as exc:
            # the message was deleted or redelivered meanwhile: nothing left to hold
            if not _is_stale(exc):
                raise

    async def extend(self, message: QueueMessage, visibility_timeout_s: int) -> None:
        await self._set_visibility(message, visibility_timeout_s, "visibility_timeout_s")

    async def release(self, message: QueueMessage, *, delay_s: int = 0) -> None:
        await self._set_visibility(message, delay_s, "delay_s")

    async def dead_letter(self, message: QueueMessage, reason: str) -> None:
        sqs, dlq_url = await self._sqs(), await self._url(self.dlq_name)
        attributes = {
            **{k: v for k, v in message.attributes.items() if k not in (REASON, SOURCE_ID)},
            REASON: reason or "unspecified",
            SOURCE_ID: message.id,
            SOURCE_QUEUE: self.name,
        }
        async with aws_errors(f"sqs queue {self.dlq_name}"):
            await sqs.send_message(
                QueueUrl=dlq_url,
                MessageBody=message.body,
                MessageAttributes={
                    k: {"DataType": "String", "StringValue": v[:MAX_ATTRIBUTE_CHARS]}
                    for k, v in attributes.items()
                    if v
                },
            )
        await self.ack(message)

    async def depth(self) -> int:
        sqs, url = await self._sqs(), await self._url(self.name)
        names = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]
        async with aws_errors(f"sqs queue {self.name}"):
            resp = await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)
        attrs = resp.get("Attributes") or {}
        return sum(int(attrs.get(n, 0)) for n in names)

    async def dlq_depth(self) -> int:
        sqs, url = await self._sqs(), await self._url(self.dlq_name)
        async with aws_errors(f"sqs queue {self.dlq_name}"):
            resp = await sqs.get_queue_attributes(
                QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
            )
        return int((resp.get("Attributes") or {}).get("ApproximateNumberOfMessages", 0))

    async def dlq_messages(self, max_messages: int = 10) -> list[QueueMessage]:
        # A peek: visibility 0 leaves them in the DLQ for the next look; a one-second long poll
        # asks every SQS server (a short poll only samples some).
        return await self._receive(
            self.dlq_name,
            max_messages=max_messages,
            wait_s=1,
            visibility_timeout_s=0,
            from_dlq=True,
        )

    # -- dead letters ---------------------------------------------------------------------------

    async def _drain_dlq(self, ids: Sequence[str] | None, *, redrive: bool) -> int:
        """Receive the DLQ page by page, holding every message (invisible) until the end: a
        selected one is re-sent (redrive) and deleted, the others are made visible again."""
        if ids is not None and not ids:
            return 0
        wanted = None if ids is None else set(ids)
        sqs = await self._sqs()
        dlq_url, url = await self._url(self.dlq_name), await self._url(self.name)
        done = 0
        skipped: list[QueueMessage] = []
        while True:
            page = await self._receive(
                self.dlq_name,
                max_messages=BATCH,
                wait_s=1,
                visibility_timeout_s=_DRAIN_HOLD_S,
                from_dlq=True,
            )
            if not page:
                break
            for m in page:
                if wanted is not None and m.id not in wanted:
                    skipped.append(m)
                    continue
                async with aws_errors(f"sqs queue {self.dlq_name}"):
                    if redrive:
                        await sqs.send_message(QueueUrl=url, MessageBody=m.body)
                    await sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=m.receipt)
                done += 1
        for m in skipped:  # back in the DLQ, visible for the next look
            async with aws_errors(f"sqs queue {self.dlq_name}"):
                await sqs.change_message_visibility(
                    QueueUrl=dlq_url, ReceiptHandle=m.receipt, VisibilityTimeout=0
                )
        return done

    async def redrive_dlq(self, ids: Sequence[str] | None = None) -> int:
        return await self._drain_dlq(ids, redrive=True)

    async def purge_dlq(self, ids: Sequence[str] | None = None) -> int:
        return await self._drain_dlq(ids, redrive=False)

    async def check(self) -> None:
        what = f"sqs queue {self.name}"
        async with dependency_check(what):
            sqs = await self._sqs()
            url = (await sqs.get_queue_url(QueueName=self.name))["QueueUrl"]
        async with dependency_check(f"sqs queue {self.dlq_name}"):
            dlq_url = (await sqs.get_queue_url(QueueName=self.dlq_name))["QueueUrl"]
            dlq = await sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])
        async with dependency_check(what):
            attrs = await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])
        policy = json.loads((attrs.get("Attributes") or {}).get("RedrivePolicy") or "{}")
        if policy.get("deadLetterTargetArn") != dlq["Attributes"]["QueueArn"]:
            raise DependencyError(
                what, f"has no RedrivePolicy to {self.dlq_name} (run `datatorag init`)"
            )
        self._urls.update({self.name: url, self.dlq_name: dlq_url})

    async def close(self) -> None:
        if self._owns_clients:
            await self._clients.close()


def _check_body(body: str) -> None:
    size = len(body.encode())
    if size > MAX_MESSAGE_BYTES:
        raise ValueError(f"SQS message of {size} bytes exceeds {MAX_MESSAGE_BYTES}")


def _chunks_by_size(bodies: list[str]) -> list[list[str]]:
    """At most 10 bodies and 256 KiB per SendMessageBatch call."""
    chunks: list[list[str]] = []
    current: list[str] = []
    size = 0
    for body in bodies:
        n = len(body.encode())
        if current and (len(current) == BATCH or size + n > MAX_BATCH_BYTES):
            chunks.append(current)
            current, size = [], 0
        current.append(body)
        size += n
    if current:
        chunks.append(current)
    return chunks


__all__ = ["SqsQueue"]
