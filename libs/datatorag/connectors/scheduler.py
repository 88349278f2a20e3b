"""Runs every configured source on its own interval, with jitter, and on demand.

* One loop task per source: sleep until due (interval +- jitter) or until ``trigger``-ed, then sync.
* Never two syncs of one source at once: a local lock per source (a trigger during a run queues
  exactly one follow-up run) and, across replicas, the registry lease taken by ``sync_source``
  (a run that finds it held is skipped and logged, not an error).
* Every source is registered in the registry (``SourceRecord``: kind, interval, next run), so
  the gateway serves ``GET /v1/sources`` from the registry alone; a source deleted through the
  API (its record carries ``deleted_at``) is not synced again, here or on any replica.
* Fairness: at most ``max_concurrent_syncs`` syncs at once, each capped by its source's
  ``max_concurrency``, and all of them draw fetch slots from one ``FairLimiter`` that serves sources
  round-robin, so a 10,000-file initial sync cannot starve a small source's new file.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, Self

from datatorag.config import Settings
from datatorag.connectors.base import Source
from datatorag.connectors.cursor import CursorStore
from datatorag.connectors.fairness import FairLimiter
from datatorag.connectors.lease import SyncInProgress
from datatorag.connectors.sync import SyncOptions, default_owner, sync_source
from datatorag.domain.errors import NotFound
from datatorag.domain.models import utcnow
from datatorag.observability.log import get_logger
from datatorag.ports.blobstore import BlobStore
from datatorag.ports.queue import Queue
from datatorag.ports.registry import Registry, RunTrigger, SourceRecord, SyncRun

log = get_logger("connector.scheduler")


@dataclass
class ScheduledSource:
    source: Source
    interval_s: float = 900.0
    jitter_s: float | None = None  # None: 10% of the interval
    options: SyncOptions | None = None
    enabled: bool = True

    @property
    def key(self) -> tuple[str, str]:
        return (self.source.tenant, self.source.id)


@dataclass
class _State:
    spec: ScheduledSource
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    running_since: float | None = None
    next_due: float | None = None
    last_run: SyncRun | None = None
    task: asyncio.Task[None] | None = None
    trigger: RunTrigger | None = None  # who asked for the next run (None: its schedule)
    deleted: bool = False  # deleted through the API: never synced again

    @property
    def jitter_s(self) -> float:
        j = self.spec.jitter_s
        return self.spec.interval_s * 0.1 if j is None else j


class Scheduler:
    def __init__(
        self,
        *,
        registry: Registry,
        blobstore: BlobStore,
        parse_queue: Queue,
        settings: Settings,
        cursor_store: CursorStore | None = None,
        max_concurrent_syncs: int = 8,
        fetch_slots: int = 16,
        owner: str | None = None,
        initial_delay: bool = True,
    ) -> None:
        self.registry = registry
        self.blobstore = blobstore
        self.parse_queue = parse_queue
        self.settings = settings
        self.cursor_store = cursor_store
        self.limiter = FairLimiter(fetch_slots)
        self.owner = owner or default_owner()
        self.initial_delay = initial_delay
        self._syncs = asyncio.Semaphore(max_concurrent_syncs)
        self._states: dict[tuple[str, str], _State] = {}
        self._started = False

    # -- configuration -------------------------------------------------------------------------
    def add(self, spec: ScheduledSource) -> None:
        if spec.interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {spec.interval_s}")
        if spec.key in self._states:
            raise ValueError(f"source {spec.key[0]}/{spec.key[1]} is already scheduled")
        state = _State(spec)
        self._states[spec.key] = state
        if self._started and spec.enabled:
            state.task = asyncio.create_task(self._loop(state), name=f"sync-loop:{spec.key}")

    def add_all(self, specs: Iterable[ScheduledSource]) -> None:
        for spec in specs:
            self.add(spec)

    def sources(self) -> list[Source]:
        return [s.spec.source for s in self._states.values()]

    def _state(self, tenant: str, source_id: str) -> _State:
        state = self._states.get((tenant, source_id))
        if state is None:
            raise NotFound(f"no source {source_id!r} for tenant {tenant!r}")
        return state

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        self._started = True
        for state in self._states.values():
            if state.spec.enabled and state.task is None:
                state.task = asyncio.create_task(
                    self._loop(state), name=f"sync-loop:{state.spec.key}"
                )

    async def stop(self, *, close_sources: bool = True) -> None:
        """Cancel the loops (a sync under way is cancelled and recorded as failed)."""
        self._started = False
        tasks = [s.task for s in self._states.values() if s.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for state in self._states.values():
            state.task = None
            if close_sources:
                with contextlib.suppress(Exception):
                    await state.spec.source.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- on demand -----------------------------------------------------------------------------
    def trigger(
        self, tenant: str, source_id: str, *, by: RunTrigger = RunTrigger.USER
    ) -> dict[str, Any]:
        """Ask for a sync as soon as possible (``POST /v1/sources/{id}/sync``); never blocks.

        Raises ``NotFound`` for an unknown (or deleted) source. A trigger while the source is
        syncing queues one follow-up run (it may have missed files added since its listing
        began). ``by`` is recorded with the run (USER, or EVENT for a storage notification).
        """
        state = self._state(tenant, source_id)
        if state.deleted:
            raise NotFound(f"source {source_id!r} was deleted")
        running = state.running_since is not None
        state.trigger = by
        state.wake.set()
        if not self._started or state.task is None:
            # not running as a service (CLI): run it in the background right here
            state.task = asyncio.create_task(
                self._one_shot(state), name=f"sync-now:{state.spec.key}"
            )
        return {"tenant": tenant, "source": source_id, "accepted": True, "running": running}

    async def sync_now(self, tenant: str, source_id: str) -> SyncRun | None:
        """Run one sync now and return it (CLI); ``None`` when another replica holds the lease."""
        return await self._run(self._state(tenant, source_id))

    def status(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        out = []
        for (tenant, sid), state in sorted(self._states.items()):
            last = state.last_run
            out.append(
                {
                    "tenant": tenant,
                    "source": sid,
                    "kind": state.spec.source.kind,
                    "enabled": state.spec.enabled,
                    "interval_s": state.spec.interval_s,
                    "running": state.running_since is not None,
                    "deleted": state.deleted,
                    "next_in_s": None if state.next_due is None else max(0.0, state.next_due - now),
                    "last_run": last.model_dump(mode="json") if last else None,
                }
            )
        return out

    # -- internals -----------------------------------------------------------------------------
    async def _one_shot(self, state: _State) -> None:
        try:
            await self._run(state)
        finally:
            state.task = None

    async def _register(self, state: _State, delay_s: float | None) -> None:
        """Record the source (and its next run) in the registry; learn whether the API deleted
        it. Best effort: the registry being down must not stop the schedule."""
        tenant, sid = state.spec.key
        try:
            existing = await self.registry.get_source(tenant, sid)
            if existing is not None and existing.deleted_at is not None:
                if not state.deleted:
                    log.warning("source_deleted_not_scheduled", tenant=tenant, source=sid)
                state.deleted = True
                return
            await self.registry.put_source(
                SourceRecord(
                    tenant=tenant,
                    source=sid,
                    kind=state.spec.source.kind,
                    interval_s=state.spec.interval_s,
                    enabled=state.spec.enabled,
                    next_run_at=None if delay_s is None else utcnow() + timedelta(seconds=delay_s),
                )
            )
        except Exception:
            log.warning("source_register_failed", tenant=tenant, source=sid, exc_info=True)

    async def _loop(self, state: _State) -> None:
        delay = random.uniform(0, state.jitter_s) if self.initial_delay else 0.0
        while True:
            await self._register(state, delay)
            if state.deleted:
                return
            state.next_due = time.monotonic() + delay
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.wake.wait(), timeout=delay)
            try:
                await self._run(state)
            except asyncio.CancelledError:
                raise
            except Exception:  # a broken source must not end its loop
                log.exception("sync_crashed", tenant=state.spec.key[0], source=state.spec.key[1])
            jitter = state.jitter_s
            delay = max(0.0, state.spec.interval_s + random.uniform(-jitter, jitter))

    async def _run(self, state: _State) -> SyncRun | None:
        async with state.lock:
            state.wake.clear()  # this run serves every trigger made before it started
            trigger, state.trigger = state.trigger or RunTrigger.SCHEDULED, None
            await self._register(state, None)  # a deletion since the last look stops it here
            if state.deleted:
                return None
            async with self._syncs:
                state.running_since = time.monotonic()
                options = replace(
                    state.spec.options or SyncOptions(), owner=self.owner, trigger=trigger
                )
                try:
                    run = await sync_source(
                        state.spec.source,
                        registry=self.registry,
                        blobstore=self.blobstore,
                        parse_queue=self.parse_queue,
                        settings=self.settings,
                        cursor_store=self.cursor_store,
                        options=options,
                        limiter=self.limiter,
                    )
                except SyncInProgress:
                    log.info(
                        "sync_skipped_lease_held",
                        tenant=state.spec.key[0],
                        source=state.spec.key[1],
                    )
                    return None
                finally:
                    state.running_since = None
            state.last_run = run
            return run
