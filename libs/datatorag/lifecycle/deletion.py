"""Delete one document, or a source with all its documents.

Order matters, so that a deleted document is never searchable again, whatever races it:

1. Every version is marked ``DELETED`` in the registry (who and when in its metadata). From
   here on every pipeline stage skips the document's messages, and an indexer that was already
   writing removes its own chunks again (``IndexStage``'s check after its upsert).
2. Every version's chunks leave the index (visible to searches when the call returns).
3. The blob retention policy: ``purge`` deletes the raw object, the chunk sets and every
   model's embedded records of every version; ``keep`` leaves them for the bucket's own
   lifecycle rules (and for an audit).

A synced document stays deleted until its source changes it: the connector treats the source's
unchanged file as unchanged (same hints or same bytes), and a changed file as a new version. To
keep a path out for good, add it to the source's ``exclude`` patterns.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from enum import StrEnum

from datatorag.domain.keys import chunks_key, records_prefix, sync_lease_name
from datatorag.domain.models import DocumentRecord, DocumentStatus, utcnow
from datatorag.observability.log import get_logger
from datatorag.ports import BlobStore, Registry, VectorIndex

log = get_logger(__name__)

_SOURCE_DOCS_LIMIT = 10_000_000


class BlobRetention(StrEnum):
    PURGE = "purge"
    KEEP = "keep"


class SourceBusy(Exception):
    """A sync of the source holds its lease: delete it after that run."""


@dataclass
class DeleteResult:
    doc_id: str
    versions: list[str]
    chunks_removed: int
    blobs_removed: int
    deleted_at: str


@dataclass
class SourceDeleteResult:
    source: str
    documents: int = 0
    chunks_removed: int = 0
    blobs_removed: int = 0
    doc_ids: list[str] = field(default_factory=list)


async def delete_document(
    registry: Registry,
    index: VectorIndex,
    blobstore: BlobStore | None,
    tenant: str,
    doc_id: str,
    *,
    by: str,
    retention: BlobRetention = BlobRetention.PURGE,
) -> DeleteResult | None:
    """None when ``tenant`` has no such live document (unknown, another tenant's, or deleted)."""
    current = await registry.current(tenant, doc_id)
    if current is None or current.status is DocumentStatus.DELETED:
        return None
    return await _delete(registry, index, blobstore, current, by=by, retention=retention)


async def _delete(
    registry: Registry,
    index: VectorIndex,
    blobstore: BlobStore | None,
    current: DocumentRecord,
    *,
    by: str,
    retention: BlobRetention,
) -> DeleteResult:
    tenant, doc_id = current.tenant, current.doc_id
    at = utcnow().isoformat()
    versions = await registry.versions(tenant, doc_id)
    for v in versions:
        await registry.advance(
            tenant, doc_id, v.version, DocumentStatus.DELETED, reason=f"deleted by {by}"
        )
        await registry.set_marker(tenant, doc_id, v.version, "deleted_by", by)
        await registry.set_marker(tenant, doc_id, v.version, "deleted_at", at)
    removed = await index.delete_document(tenant, doc_id)
    blobs = 0
    if blobstore is not None and retention is BlobRetention.PURGE:
        blobs = await _purge_blobs(blobstore, tenant, doc_id, versions)
    log.info(
        "document deleted",
        tenant=tenant,
        doc_id=doc_id,
        by=by,
        versions=len(versions),
        chunks_removed=removed,
        blobs_removed=blobs,
    )
    return DeleteResult(doc_id, [v.version for v in versions], removed, blobs, at)


async def _purge_blobs(
    blobstore: BlobStore, tenant: str, doc_id: str, versions: list[DocumentRecord]
) -> int:
    keys = {v.blob_key for v in versions if v.blob_key}
    keys |= {chunks_key(tenant, doc_id, v.version) for v in versions}
    keys |= {k async for k in blobstore.list(records_prefix(tenant, doc_id))}
    for key in sorted(keys):
        await blobstore.delete(key)  # a missing key is a no-op
    return len(keys)


async def delete_source(
    registry: Registry,
    index: VectorIndex,
    blobstore: BlobStore | None,
    tenant: str,
    source: str,
    *,
    by: str,
    retention: BlobRetention = BlobRetention.PURGE,
    lease_ttl_s: float = 600.0,
) -> SourceDeleteResult | None:
    """Stop the source's schedule (its registry record says deleted: the connector checks it
    before every run) and purge its documents. None when the tenant has no such source.

    Holds the source's sync lease meanwhile, so no sync of it runs half-way through the purge;
    raises ``SourceBusy`` while a sync holds it."""
    record = await registry.get_source(tenant, source)
    if record is None or record.deleted_at is not None:
        return None
    lease, owner = sync_lease_name(tenant, source), f"delete-source:{by}:{id(record)}"
    if not await registry.acquire_lease(lease, owner, lease_ttl_s):
        raise SourceBusy(f"a sync of source {source!r} is running; try again when it ends")
    try:
        await registry.put_source(
            record.model_copy(update={"deleted_at": utcnow(), "deleted_by": by, "enabled": False})
        )
        result = SourceDeleteResult(source)
        docs = await registry.find(tenant=tenant, source=source, limit=_SOURCE_DOCS_LIMIT)
        for doc in docs:
            if doc.status is DocumentStatus.DELETED:
                continue
            done = await _delete(registry, index, blobstore, doc, by=by, retention=retention)
            result.documents += 1
            result.chunks_removed += done.chunks_removed
            result.blobs_removed += done.blobs_removed
            result.doc_ids.append(doc.doc_id)
            await asyncio.sleep(0)
        return result
    finally:
        await registry.release_lease(lease, owner)
