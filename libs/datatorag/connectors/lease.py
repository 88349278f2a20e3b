"""The sync lease: at most one sync of a source at a time, across replicas too.

The lease is a registry lease named ``sync:{tenant}:{source}``. ``hold_sync_lease`` acquires it
(``SyncInProgress`` when another owner holds it), renews it in the background every third of its
TTL while the sync lasts and releases it at the end. A renewal that fails (the registry refused
it, or this process stalled past the TTL and another replica took over) marks the lease lost;
the sync calls ``SyncLease.check`` before every write, which then raises ``LeaseLost``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from datatorag.domain.errors import DataToRagError
from datatorag.domain.keys import sync_lease_name
from datatorag.observability.log import get_logger
from datatorag.ports.registry import Registry

log = get_logger("connector.sync")


class SyncInProgress(DataToRagError):
    """Another sync of this source holds the lease."""

    def __init__(self, tenant: str, source: str) -> None:
        super().__init__(f"a sync of {tenant}/{source} is already running")
        self.tenant = tenant
        self.source = source


class LeaseLost(DataToRagError):
    """The lease could not be renewed (this process stalled past the TTL): stop writing."""


def lease_name(tenant: str, source: str) -> str:
    return sync_lease_name(tenant, source)


class SyncLease:
    """The lease of one sync of ``tenant``/``source``, held by ``owner``."""

    def __init__(
        self, registry: Registry, tenant: str, source: str, *, owner: str, ttl_s: float
    ) -> None:
        self.registry = registry
        self.tenant = tenant
        self.source = source
        self.owner = owner
        self.ttl_s = ttl_s
        self.name = lease_name(tenant, source)
        self.lost = asyncio.Event()

    async def keep(self) -> None:
        """Renew the lease until cancelled; on the first failed renewal mark it lost and stop."""
        interval = max(self.ttl_s / 3, 0.05)
        while True:
            await asyncio.sleep(interval)
            try:
                ok = await self.registry.acquire_lease(self.name, self.owner, self.ttl_s)
            except Exception:  # noqa: BLE001 - a registry hiccup counts as a lost lease
                ok = False
            if not ok:
                self.lost.set()
                return

    def check(self) -> None:
        """Raise ``LeaseLost`` once a renewal failed: another replica may be syncing now."""
        if self.lost.is_set():
            raise LeaseLost(
                f"lost the sync lease of {self.tenant}/{self.source}; another replica may run it"
            )


@asynccontextmanager
async def hold_sync_lease(
    registry: Registry, tenant: str, source: str, *, owner: str, ttl_s: float
) -> AsyncIterator[SyncLease]:
    """Acquire the sync lease of ``tenant``/``source`` (or raise ``SyncInProgress``), keep it
    renewed while the block runs and release it afterwards."""
    lease = SyncLease(registry, tenant, source, owner=owner, ttl_s=ttl_s)
    if not await registry.acquire_lease(lease.name, owner, ttl_s):
        raise SyncInProgress(tenant, source)
    keeper = asyncio.create_task(lease.keep())
    try:
        yield lease
    finally:
        keeper.cancel()
        await asyncio.gather(keeper, return_exceptions=True)
        try:
            await registry.release_lease(lease.name, owner)
        except Exception:  # noqa: BLE001 - the lease expires on its own; keep the run's outcome
            log.warning("lease_release_failed", source=source, tenant=tenant)
