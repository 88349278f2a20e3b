"""Poison, not crash loop: a document whose processing ended the consuming process is recognised
on redelivery and failed with the reason, instead of being handed to the next process to kill.

Before a stage handles a delivery it counts the attempt in the registry (a marker on the version's
record); when the attempt ends in any way the process survives (done, failed, released for a
retry) the marker is removed. A marker still present at the next delivery means that many
attempts died mid-way. The delivery's receive count confirms it: a message received once has had
no earlier attempt to crash.
"""

from __future__ import annotations

from datatorag.domain.contracts import Message
from datatorag.domain.errors import PermanentError
from datatorag.observability.log import get_logger
from datatorag.ports import QueueMessage, Registry

log = get_logger(__name__)


class CrashGuard:
    def __init__(self, registry: Registry, service: str, max_crashes: int = 2) -> None:
        self.registry = registry
        self.service = service
        self.max_crashes = max_crashes
        self.key = f"attempts.{service}"

    @staticmethod
    def _target(message: Message) -> tuple[str, str, str] | None:
        version = getattr(message, "version", None)
        return (message.tenant, message.doc_id, version) if version else None

    async def enter(self, raw: QueueMessage, message: Message) -> PermanentError | None:
        """Count this attempt; the error to record instead when earlier ones kept crashing."""
        target = self._target(message)
        if target is None:
            return None
        record = await self.registry.get(*target)
        if record is None:
            return None
        started = int(record.metadata.get(self.key, "0") or 0)
        if started and raw.receive_count > 1 and started >= self.max_crashes:
            reason = (
                f"processing this document ended the {self.service} process {started} times "
                "(killed or out of memory); it is not retried (DATATORAG_LIMIT_MAX_CRASHES)"
            )
            log.error("crash loop stopped", service=self.service, attempts=started)
            await self.registry.fail(*target, reason, code="worker_crashed")
            await self.registry.set_marker(*target, self.key, None)
            return PermanentError(reason, code="worker_crashed")
        await self.registry.set_marker(*target, self.key, str(started + 1))
        return None

    async def leave(self, message: Message) -> None:
        """The attempt ended without taking the process down."""
        target = self._target(message)
        if target is not None:
            await self.registry.set_marker(*target, self.key, None)
