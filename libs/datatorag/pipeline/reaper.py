"""No silent stalls: documents stuck in a non-final state are reported and re-driven.

A version that has sat in FETCHED, PARSED or EMBEDDED longer than ``stalled_after_s`` lost its
message somewhere (a crash between steps, a purged queue). Every step's output is durable and
keyed deterministically, so we re-send the message of its *last durable step*; consumers are
idempotent, so a spare message costs a little work, never a duplicate.
"""

from __future__ import annotations

import asyncio

from datatorag.domain.contracts import ChunksEmbedded, ChunksReady, DocumentFetched
from datatorag.domain.keys import chunks_key, records_key
from datatorag.domain.models import DocumentRecord, DocumentStatus
from datatorag.observability import metrics
from datatorag.observability.log import get_logger
from datatorag.ports import BlobStore, Queue, Registry

log = get_logger(__name__)


class StallReaper:
    def __init__(
        self,
        registry: Registry,
        blobstore: BlobStore,
        queues: dict[str, Queue],
        *,
        stalled_after_s: float,
        model_id: str | None = None,
        dim: int | None = None,
    ) -> None:
        self.registry = registry
        self.blobstore = blobstore
        self.queues = queues  # parse, embed, index
        self.stalled_after_s = stalled_after_s
        self.model_id = model_id
        self.dim = dim
        self._task: asyncio.Task[None] | None = None

    async def sweep(self) -> dict[str, int]:
        """One pass: returns how many documents were re-driven per status."""
        stalled = await self.registry.stalled(self.stalled_after_s)
        metrics.STALLED_DOCUMENTS.set(len(stalled))
        counts: dict[str, int] = {}
        for rec in stalled:
            try:
                if await self._redrive(rec):
                    counts[rec.status.value] = counts.get(rec.status.value, 0) + 1
            except Exception:  # one bad record must not stop the sweep
                log.exception(
                    "redrive failed", tenant=rec.tenant, doc_id=rec.doc_id, version=rec.version
                )
        if counts:
            log.warning("re-drove stalled documents", counts=counts)
        return counts

    async def _redrive(self, rec: DocumentRecord) -> bool:
        common = {"tenant": rec.tenant, "doc_id": rec.doc_id, "version": rec.version}
        if rec.status is DocumentStatus.FETCHED and rec.blob_key:
            msg = DocumentFetched(
                **common,
                seq=rec.seq,
                source=rec.source,
                path=rec.path,
                blob_key=rec.blob_key,
                content_hash=rec.content_hash,
                size=rec.size or 0,
                title=rec.title,
            )
            await self.queues["parse"].send(msg.to_json())
            return True
        if rec.status is DocumentStatus.PARSED:
            key = chunks_key(rec.tenant, rec.doc_id, rec.version)
            if await self.blobstore.exists(key):
                await self.queues["embed"].send(
                    ChunksReady(
                        **common, chunks_key=key, chunk_count=rec.chunk_count or 0
                    ).to_json()
                )
                return True
        if rec.status is DocumentStatus.EMBEDDED and self.model_id and self.dim:
            key = records_key(rec.tenant, rec.doc_id, rec.version, self.model_id)
            if await self.blobstore.exists(key):
                await self.queues["index"].send(
                    ChunksEmbedded(
                        **common,
                        records_key=key,
                        chunk_count=rec.chunk_count or 0,
                        model_id=self.model_id,
                        dim=self.dim,
                    ).to_json()
                )
                return True
        log.warning(
            "stalled document cannot be re-driven from a durable step",
            tenant=rec.tenant,
            doc_id=rec.doc_id,
            status=rec.status.value,
        )
        return False

    def start(self, interval_s: float) -> None:
        self._task = asyncio.create_task(self._loop(interval_s), name="stall-reaper")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.sweep()
            except Exception:
                log.exception("stall sweep failed")
