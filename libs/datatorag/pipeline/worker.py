"""The consumer loop every pipeline service runs.

At-least-once, done carefully:
* each message in hand gets a heartbeat that extends its visibility timeout while we work;
* a message is acknowledged only after the handler's output is durable;
* ``PermanentError`` -> the handler has recorded the reason against the document; ack at once
  (no retry storm);
* anything else -> release with exponential backoff; on the last allowed receive the message is
  dead-lettered with the reason, which is also recorded against the document;
* an unparseable body is poison: dead-lettered immediately;
* after a retryable failure, or a failed receive, the worker asks ``ready_probe`` (the service's
  dependencies) and takes no new message until it passes: during an outage (OpenSearch down)
  receiving would only spend each message's receive count, and SQS dead-letters a message after
  maxReceiveCount receives;
* on shutdown we stop receiving, give in-flight work ``grace_s`` to finish, and release the rest
  so another worker picks it up without waiting for the visibility timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from pydantic import ValidationError

from datatorag.domain.contracts import Message, parse_message
from datatorag.domain.errors import PermanentError
from datatorag.observability import metrics
from datatorag.observability.log import bound, get_logger
from datatorag.pipeline.crash_guard import CrashGuard
from datatorag.ports.queue import Queue, QueueMessage

log = get_logger(__name__)

# Called with (message, reason) when a message is given up on, so the registry records why.
GiveUpHook = Callable[[Message, str], Awaitable[None]]
# Raises while a dependency the handler needs is down (missing or unreachable).
ReadyProbe = Callable[[], Awaitable[None]]
PROBE_MAX_INTERVAL_S = 5.0
RECEIVE_BACKOFF_MAX_S = 30.0  # between receives that keep failing while the probe passes


@dataclass
class Delivery:
    raw: QueueMessage
    message: Message


class BatchHandler:
    """Handles a list of deliveries; returns one ``None`` (success) or exception per delivery."""

    service: str = "worker"

    async def handle_batch(self, deliveries: Sequence[Delivery]) -> list[BaseException | None]:
        raise NotImplementedError

    async def on_permanent(self, message: Message, error: PermanentError) -> None:
        """Record a permanent failure before the delivery is acknowledged (default: nothing)."""

    async def interrupt(self) -> None:
        """Shutdown has begun: abandon work that cannot finish within the grace period (its
        deliveries are released, not failed). Most handlers simply finish what they hold."""

    async def on_give_up(self, message: Message, reason: str) -> None:
        """Record a message that will not be retried (dead-lettered)."""


class OneByOneHandler(BatchHandler):
    """Handles deliveries one at a time (concurrency comes from several loops)."""

    async def handle(self, message: Message) -> None:
        raise NotImplementedError

    async def handle_batch(self, deliveries: Sequence[Delivery]) -> list[BaseException | None]:
        results: list[BaseException | None] = []
        for d in deliveries:
            with bound(
                tenant=d.message.tenant,
                doc_id=d.message.doc_id,
                correlation_id=d.message.correlation_id,
                version=getattr(d.message, "version", None),
            ):
                try:
                    await self.handle(d.message)
                    results.append(None)
                except asyncio.CancelledError:
                    raise
                except BaseException as exc:  # noqa: BLE001 - classified by the worker
                    results.append(exc)
        return results


def backoff_s(receive_count: int, base: float = 2.0, cap: int = 300) -> int:
    return int(min(cap, base ** max(0, receive_count - 1)))


class Worker:
    def __init__(
        self,
        queue: Queue,
        handler: BatchHandler,
        *,
        batch_size: int = 1,
        loops: int = 1,
        wait_s: float = 10.0,
        grace_s: float = 25.0,
        gather_s: float = 0.0,
        ready_probe: ReadyProbe | None = None,
        crash_guard: CrashGuard | None = None,
    ) -> None:
        self.queue = queue
        self.handler = handler
        self.service = handler.service
        self.batch_size = batch_size
        self.loops = loops
        self.wait_s = wait_s
        self.grace_s = grace_s
        self.gather_s = gather_s  # extra time to fill a batch (embedder: cross-message batches)
        self.ready_probe = ready_probe
        self.crash_guard = crash_guard
        self.last_progress = time.time()
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._sampler: asyncio.Task[None] | None = None
        self.depth_interval_s = 15.0

    # lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        for i in range(self.loops):
            self._tasks.append(asyncio.create_task(self._loop(), name=f"{self.service}-loop-{i}"))
        self._sampler = asyncio.create_task(self._sample_depth(), name=f"{self.service}-depth")

    async def stop(self) -> None:
        """Within ``grace_s``: no new receives, in-flight work finished or released."""
        self._stopping.set()
        await self.handler.interrupt()
        if self._sampler is not None:
            self._sampler.cancel()
            await asyncio.gather(self._sampler, return_exceptions=True)
            self._sampler = None
        if not self._tasks:
            return
        # a loop in receive returns within wait_s (< grace_s) holding nothing
        _, pending = await asyncio.wait(self._tasks, timeout=self.grace_s)
        for t in pending:  # the loop's own finally-block releases the messages it holds
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def run_until_stopped(self) -> None:
        self.start()
        await self._stopping.wait()
        await self.stop()

    @property
    def alive(self) -> bool:
        return bool(self._tasks) and not all(t.done() for t in self._tasks)

    # the loop ---------------------------------------------------------------------------------
    async def _loop(self) -> None:
        failures = 0  # receives failed in a row
        while not self._stopping.is_set():
            self._progress()
            try:
                raw = await self._receive()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a flaky queue must not kill the worker
                failures += 1
                await self._after_receive_failed(exc, failures)
                continue
            if failures:
                log.info("receiving again", service=self.service, failed_receives=failures)
                failures = 0
            self._progress()
            if not raw:
                continue
            retrying = await self._process(raw)
            self._progress()
            if retrying and self.ready_probe is not None:
                await self._wait_until_ready()

    async def _after_receive_failed(self, exc: Exception, failures: int) -> None:
        """Pause, not spin: wait for ``ready_probe`` (which runs the queue's receive path) and
        back off; the traceback is logged once per outage, then one line per retry."""
        if failures == 1:
            log.error(
                "receive failed; paused until the queue is ready",
                service=self.service,
                exc_info=exc,
            )
        else:
            log.warning(
                "receive failed again", service=self.service, failures=failures, error=repr(exc)
            )
        if self.ready_probe is not None:
            await self._wait_until_ready()
        self._progress()
        await self._sleep(min(RECEIVE_BACKOFF_MAX_S, 2.0 * 2 ** (failures - 1)))

    async def _receive(self) -> list[QueueMessage]:
        wait = min(self.wait_s, 1.0) if self._stopping.is_set() else self.wait_s
        got = await self.queue.receive(self.batch_size, wait_s=wait)
        if got and self.gather_s > 0 and len(got) < self.batch_size:
            deadline = time.monotonic() + self.gather_s
            while len(got) < self.batch_size and time.monotonic() < deadline:
                more = await self.queue.receive(self.batch_size - len(got), wait_s=0)
                if not more:
                    await asyncio.sleep(min(0.05, self.gather_s))
                got.extend(more)
        return got

    async def _process(self, raw: list[QueueMessage]) -> bool:
        """Handle and settle ``raw``; True when a delivery was released for a retry."""
        deliveries: list[Delivery] = []
        for m in raw:
            try:
                deliveries.append(Delivery(m, parse_message(m.body)))
            except (ValidationError, ValueError) as exc:
                reason = f"malformed message: {str(exc).splitlines()[0][:300]}"
                log.error("poison message dead-lettered", service=self.service, reason=reason)
                metrics.MESSAGES.labels(self.service, "dead_letter").inc()
                await self.queue.dead_letter(m, reason)
        if not deliveries:
            return False
        retrying = False
        if self.crash_guard is not None:
            deliveries, crashed = await self._guard(deliveries)
            for d, err in crashed:
                retrying |= await self._settle(d, err)
            if not deliveries:
                return retrying
        heartbeat = asyncio.create_task(self._heartbeat([d.raw for d in deliveries]))
        metrics.IN_FLIGHT.labels(self.service).inc(len(deliveries))
        started = time.perf_counter()
        settled: set[str] = set()
        try:
            results = await self.handler.handle_batch(deliveries)
            for d, result in zip(deliveries, results, strict=True):
                retrying |= await self._settle(d, result)
                settled.add(d.raw.receipt)
        finally:
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)
            metrics.IN_FLIGHT.labels(self.service).dec(len(deliveries))
            metrics.HANDLE_SECONDS.labels(self.service).observe(time.perf_counter() - started)
            # Cancelled mid-work (shutdown past grace): hand the rest back right away.
            for d in deliveries:
                if d.raw.receipt not in settled:
                    await asyncio.shield(self._release_quietly(d.raw))
            if self.crash_guard is not None:  # the process survived every attempt above
                for d in deliveries:
                    await asyncio.shield(self._leave_quietly(d))
        return retrying

    async def _guard(
        self, deliveries: list[Delivery]
    ) -> tuple[list[Delivery], list[tuple[Delivery, PermanentError]]]:
        """Split off deliveries whose earlier attempts kept killing the process."""
        assert self.crash_guard is not None
        keep: list[Delivery] = []
        crashed: list[tuple[Delivery, PermanentError]] = []
        for d in deliveries:
            try:
                err = await self.crash_guard.enter(d.raw, d.message)
            except Exception:
                log.warning("crash marker not recorded", service=self.service, exc_info=True)
                err = None
            if err is None:
                keep.append(d)
            else:
                crashed.append((d, err))
        return keep, crashed

    async def _leave_quietly(self, d: Delivery) -> None:
        assert self.crash_guard is not None
        try:
            await self.crash_guard.leave(d.message)
        except Exception:
            log.warning("crash marker not cleared", service=self.service, exc_info=True)

    async def _settle(self, d: Delivery, result: BaseException | None) -> bool:
        """Ack, dead-letter or release one delivery; True when it was released for a retry."""
        with bound(
            tenant=d.message.tenant,
            doc_id=d.message.doc_id,
            correlation_id=d.message.correlation_id,
        ):
            if result is None:
                await self.queue.ack(d.raw)
                metrics.MESSAGES.labels(self.service, "ok").inc()
                return False
            if isinstance(result, PermanentError):
                log.warning(
                    "permanent error; recorded and acknowledged",
                    code=result.code,
                    reason=result.reason,
                )
                await self.handler.on_permanent(d.message, result)
                await self.queue.ack(d.raw)
                metrics.MESSAGES.labels(self.service, "permanent_error").inc()
                return False
            reason = f"{type(result).__name__}: {result}"[:1000]
            if d.raw.receive_count >= self.queue.max_receives:
                log.error(
                    "giving up after max receives; dead-lettered",
                    reason=reason,
                    receives=d.raw.receive_count,
                )
                try:
                    await self.handler.on_give_up(
                        d.message, f"gave up after {d.raw.receive_count} attempts: {reason}"
                    )
                finally:
                    await self.queue.dead_letter(d.raw, reason)
                metrics.MESSAGES.labels(self.service, "dead_letter").inc()
                return False
            delay = backoff_s(d.raw.receive_count)
            log.warning(
                "transient error; will retry",
                reason=reason,
                retry_in_s=delay,
                receives=d.raw.receive_count,
                exc_info=result,
            )
            await self.queue.release(d.raw, delay_s=delay)
            metrics.MESSAGES.labels(self.service, "retry").inc()
            return True

    async def _wait_until_ready(self) -> None:
        """Take no new message while ``ready_probe`` fails (a dependency is down); probing counts
        as progress, so liveness stays green: restarting the worker would not bring it back."""
        assert self.ready_probe is not None
        interval, paused_at = 0.5, None
        while not self._stopping.is_set():
            try:
                await self.ready_probe()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
                if paused_at is None:
                    paused_at = time.monotonic()
                    log.warning(
                        "dependency down; receiving paused until it is back",
                        service=self.service,
                        detail=str(exc)[:500],
                    )
                self._progress()
                await self._sleep(interval)
                interval = min(PROBE_MAX_INTERVAL_S, interval * 2)
                continue
            if paused_at is not None:
                log.info(
                    "dependencies back; receiving again",
                    service=self.service,
                    paused_s=round(time.monotonic() - paused_at, 1),
                )
            return

    async def _heartbeat(self, messages: list[QueueMessage]) -> None:
        vt = self.queue.visibility_timeout_s
        interval = max(1.0, vt / 3)
        while True:
            await asyncio.sleep(interval)
            for m in messages:
                try:
                    await self.queue.extend(m, vt)
                except Exception:  # noqa: BLE001 - worst case the message is redelivered
                    log.warning("visibility heartbeat failed", message_id=m.id)
            self._progress()

    async def _sample_depth(self) -> None:
        """Queue and DLQ depth for dashboards and the DLQ-not-empty alert."""
        while True:
            try:
                metrics.QUEUE_DEPTH.labels(self.queue.name).set(await self.queue.depth())
                dlq = self.queue.dlq_name
                metrics.QUEUE_DEPTH.labels(dlq).set(await self.queue.dlq_depth())
            except Exception:  # noqa: BLE001 - metrics must never disturb the work
                log.debug("queue depth sample failed", queue=self.queue.name)
            await asyncio.sleep(self.depth_interval_s)

    async def _release_quietly(self, m: QueueMessage) -> None:
        try:
            await self.queue.release(m)
        except Exception:  # noqa: BLE001
            log.warning(
                "release on shutdown failed; message returns after its timeout", message_id=m.id
            )

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    def _progress(self) -> None:
        self.last_progress = time.time()
        metrics.LAST_PROGRESS.labels(self.service).set(self.last_progress)
