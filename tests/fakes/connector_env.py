"""A real embedded pipeline front (SQLite registry and queue, local blob store) for connector tests,
with helpers to run a sync and read exactly what reached the parse queue."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datatorag.adapters.embedded.local_blobstore import LocalBlobStore
from datatorag.adapters.embedded.sqlite_queue import SqliteQueue
from datatorag.adapters.embedded.sqlite_registry import SqliteRegistry
from datatorag.config import Settings
from datatorag.connectors.base import Source
from datatorag.connectors.sync import SyncOptions, sync_source
from datatorag.domain.contracts import (
    DocumentAudience,
    DocumentDeleted,
    DocumentFetched,
    parse_message,
)
from datatorag.ports.registry import SyncRun


@dataclass
class ConnectorEnv:
    registry: SqliteRegistry
    blobstore: LocalBlobStore
    queue: SqliteQueue
    settings: Settings

    @classmethod
    def create(cls, tmp_path: Path, **settings: Any) -> ConnectorEnv:
        return cls(
            registry=SqliteRegistry(tmp_path / "registry.db"),
            blobstore=LocalBlobStore(tmp_path / "blobs"),
            queue=SqliteQueue(tmp_path / "queue.db", name="parse", visibility_timeout_s=60),
            settings=Settings(**settings),
        )

    async def sync(self, source: Source, **options: Any) -> SyncRun:
        opts = SyncOptions(**{"delete_grace_s": 0.0, **options})
        return await sync_source(
            source,
            registry=self.registry,
            blobstore=self.blobstore,
            parse_queue=self.queue,
            settings=self.settings,
            options=opts,
        )

    async def drain(self) -> list[DocumentFetched | DocumentDeleted | DocumentAudience]:
        out: list[Any] = []
        while batch := await self.queue.receive(10):
            out.extend(parse_message(m.body) for m in batch)
            await self.queue.ack_batch(batch)
        return out

    async def flow(self) -> list[tuple[str, str]]:
        """What reached the parse queue since the last call: sorted (kind, path) pairs."""
        kinds = {
            DocumentFetched: "fetched",
            DocumentDeleted: "deleted",
            DocumentAudience: "audience",
        }
        return sorted((kinds[type(m)], m.path) for m in await self.drain())

    async def close(self) -> None:
        await self.queue.close()
        await self.registry.close()
        await self.blobstore.close()
