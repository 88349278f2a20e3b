"""S3 event notifications as a prompt: an object created or removed under a watched bucket/prefix
triggers that S3 source's sync right away instead of at its next interval.

The sync (a listing) stays the source of truth, so a lost, duplicated or out-of-order event costs
nothing but promptness, and deletions still go through the grace period. Accepted bodies: S3's
own notification (``{"Records": [{"eventName": ..., "s3": {"bucket": {"name"}, "object":
{"key"}}}]}``), the same wrapped in an SNS envelope (``{"Type": "Notification", "Message":
"<json>"}``), and EventBridge ``Object Created``/``Object Deleted`` events. ``s3:TestEvent`` is
acknowledged and ignored; a body that is none of these goes to the DLQ with the reason.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote_plus

from datatorag.connectors.config import S3SourceConfig, SourcesConfig
from datatorag.connectors.scheduler import Scheduler
from datatorag.domain.errors import NotFound
from datatorag.observability.log import get_logger
from datatorag.ports.queue import Queue
from datatorag.ports.registry import RunTrigger

log = get_logger("connector.s3_events")


@dataclass(frozen=True)
class S3Event:
    name: str  # ObjectCreated:Put, ObjectRemoved:Delete, ...
    bucket: str
    key: str


def parse_s3_events(body: str) -> list[S3Event]:
    """The object events in one message body; raises ``ValueError`` for a body that is not one."""
    data = json.loads(body)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    if data.get("Type") == "Notification" and isinstance(data.get("Message"), str):
        return parse_s3_events(data["Message"])  # SNS fan-out
    if data.get("Event") == "s3:TestEvent":
        return []
    if data.get("source") == "aws.s3" and isinstance(data.get("detail"), dict):  # EventBridge
        detail = data["detail"]
        return [
            S3Event(
                str(data.get("detail-type", "")), detail["bucket"]["name"], detail["object"]["key"]
            )
        ]
    records = data.get("Records")
    if not isinstance(records, list):
        raise ValueError("no Records: not an S3 event notification")
    events = []
    for record in records:
        s3 = record.get("s3") if isinstance(record, dict) else None
        if not isinstance(s3, dict):
            raise ValueError("a record without s3")
        # keys arrive URL-encoded (spaces as '+')
        key = unquote_plus(str(s3["object"]["key"]))
        events.append(S3Event(str(record.get("eventName", "")), str(s3["bucket"]["name"]), key))
    return events


@dataclass(frozen=True)
class Route:
    bucket: str
    prefix: str
    tenant: str
    source_id: str


def routes_from_config(config: SourcesConfig) -> list[Route]:
    return [
        Route(cfg.bucket, cfg.prefix.lstrip("/"), tenant, cfg.id)
        for tenant, cfg in config.items()
        if isinstance(cfg, S3SourceConfig) and cfg.enabled
    ]


def match(routes: Iterable[Route], event: S3Event) -> list[tuple[str, str]]:
    return [
        (r.tenant, r.source_id)
        for r in routes
        if r.bucket == event.bucket and event.key.startswith(r.prefix)
    ]


async def pump_s3_events(
    queue: Queue,
    scheduler: Scheduler,
    routes: list[Route],
    *,
    stop: asyncio.Event,
    wait_s: float = 10.0,
) -> None:
    """Consume notifications until ``stop`` is set, triggering the matching sources' syncs."""
    while not stop.is_set():
        messages = await queue.receive(10, wait_s=wait_s)
        wanted: set[tuple[str, str]] = set()
        handled = []
        for message in messages:
            try:
                events = parse_s3_events(message.body)
            except (ValueError, KeyError, TypeError) as exc:
                await queue.dead_letter(message, f"not an S3 event notification: {exc}")
                continue
            handled.append(message)
            for event in events:
                wanted.update(match(routes, event))
        for tenant, source_id in sorted(wanted):  # one trigger per source per batch
            try:
                scheduler.trigger(tenant, source_id, by=RunTrigger.EVENT)
            except NotFound:
                log.warning("s3_event_unknown_source", tenant=tenant, source=source_id)
        await queue.ack_batch(handled)
