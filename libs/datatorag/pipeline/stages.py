"""The three pipeline stages: parse, embed, index. Each is idempotent under redelivery.

Ordering rule for every stage: write output to the blob store, send the next message, THEN
advance the registry, then ack. A crash anywhere replays the message; the replay either skips
(registry already advanced) or redoes work whose output is keyed deterministically.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from datatorag.config import Settings
from datatorag.domain.contracts import (
    ChunksEmbedded,
    ChunksReady,
    DocumentAudience,
    DocumentDeleted,
    DocumentFetched,
    Message,
)
from datatorag.domain.errors import PermanentError
from datatorag.domain.keys import chunks_key, records_key
from datatorag.domain.models import DocumentRecord, DocumentStatus, utcnow
from datatorag.embedding.passage import passage_text
from datatorag.observability import metrics
from datatorag.observability.log import bound, get_logger
from datatorag.parsing.limits import ParseLimits
from datatorag.parsing.model import OcrPage
from datatorag.parsing.ocr import LOW_CONFIDENCE
from datatorag.pipeline.payloads import ChunkSet, EmbeddedChunkSet
from datatorag.pipeline.sandbox import ParseJob, ParseSandbox
from datatorag.pipeline.worker import BatchHandler, Delivery, OneByOneHandler
from datatorag.ports import BlobStore, Embedder, Queue, Registry, VectorIndex

log = get_logger(__name__)


@dataclass
class StageDeps:
    settings: Settings
    registry: Registry
    blobstore: BlobStore


async def _record_give_up(registry: Registry, message: Message, reason: str) -> None:
    version = getattr(message, "version", None)
    if version:
        await registry.fail(message.tenant, message.doc_id, version, reason, code="gave_up")


async def _record_permanent(registry: Registry, message: Message, error: PermanentError) -> None:
    version = getattr(message, "version", None)
    if version:  # a no-op when the stage recorded it already (FAILED never moves again)
        await registry.fail(message.tenant, message.doc_id, version, error.reason, code=error.code)


def _should_skip(record: DocumentRecord | None, upto: DocumentStatus) -> str | None:
    """Why a message for this version needs no work (None: do the work)."""
    if record is None:
        return "unknown version (registry has no record)"
    if record.status in (DocumentStatus.FAILED, DocumentStatus.DELETED):
        return f"version is {record.status.value}"
    if record.status.rank >= upto.rank:
        return f"already {record.status.value}"
    return None


async def _bounded_get(deps: StageDeps, key: str, what: str) -> bytes:
    """A stage's input object, refused (not loaded) when it is over the payload bound."""
    limit = deps.settings.limits.max_payload_bytes
    info = await deps.blobstore.head(key)
    if info.size > limit:
        raise PermanentError(
            f"the {what} object is {info.size:,} bytes, over the {limit:,}-byte bound "
            "(DATATORAG_LIMIT_MAX_PAYLOAD_BYTES)",
            code="payload_too_large",
        )
    return await deps.blobstore.get(key)


async def _superseded(registry: Registry, record: DocumentRecord) -> bool:
    """A newer version of the document exists: do not spend work on this one."""
    current = await registry.current(record.tenant, record.doc_id)
    if current is not None and current.version != record.version and current.seq > record.seq:
        await registry.advance(
            record.tenant,
            record.doc_id,
            record.version,
            DocumentStatus.DELETED,
            reason=f"superseded by version {current.version}",
        )
        return True
    return False


async def _record_ocr(
    registry: Registry, message: DocumentFetched, pages: Sequence[OcrPage]
) -> None:
    """The pages read by OCR and their confidence, on the version's record (its metadata, shown
    by ``GET /v1/documents/{id}``): ``ocr.pages`` (count), ``ocr.confidence`` ("page:confidence"
    for each), ``ocr.low_confidence_pages`` (the pages under ``LOW_CONFIDENCE``, when any)."""
    low = [p.page for p in pages if p.confidence < LOW_CONFIDENCE]
    markers = {
        "ocr.pages": str(len(pages)),
        "ocr.confidence": ",".join(f"{p.page}:{p.confidence:g}" for p in pages),
        "ocr.low_confidence_pages": ",".join(map(str, low)) or None,
    }
    for key, value in markers.items():
        await registry.set_marker(message.tenant, message.doc_id, message.version, key, value)
    metrics.OCR_PAGES.labels("low").inc(len(low))
    metrics.OCR_PAGES.labels("ok").inc(len(pages) - len(low))
    if low:
        log.warning("low OCR confidence", pages=low, threshold=LOW_CONFIDENCE)


class ParseStage(OneByOneHandler):
    """DocumentFetched -> chunks in the blob store -> ChunksReady. Tombstones pass through."""

    service = "parser"

    def __init__(
        self,
        deps: StageDeps,
        out: Queue,
        index_queue: Queue,
        sandbox: ParseSandbox,
        max_tokens: int,
    ) -> None:
        self.deps = deps
        self.out = out
        self.index_queue = index_queue
        self.sandbox = sandbox  # every parse runs in a bounded worker process
        self.max_tokens = max_tokens

    async def interrupt(self) -> None:
        """Shutdown: kill the parses in flight; their messages are released, not failed."""
        await self.sandbox.close()

    async def on_give_up(self, message: Message, reason: str) -> None:
        await _record_give_up(self.deps.registry, message, reason)

    async def on_permanent(self, message: Message, error: PermanentError) -> None:
        await _record_permanent(self.deps.registry, message, error)

    async def handle(self, message: Message) -> None:
        if isinstance(message, DocumentDeleted | DocumentAudience):
            await self.index_queue.send(message.to_json())  # the indexer's business
            return
        if not isinstance(message, DocumentFetched):
            raise PermanentError(f"parser cannot handle {message.type}", code="wrong_queue")
        reg = self.deps.registry
        record = await reg.get(message.tenant, message.doc_id, message.version)
        if (why := _should_skip(record, DocumentStatus.PARSED)) is not None:
            log.info("skip", why=why)
            return
        assert record is not None
        if await _superseded(reg, record):
            return
        try:
            data = await self.deps.blobstore.get(message.blob_key)
            parsed = await self.sandbox.parse(message.tenant, self._job(data, message))
        except PermanentError as exc:
            await reg.fail(
                message.tenant, message.doc_id, message.version, exc.reason, code=exc.code
            )
            metrics.DOCUMENTS.labels("FAILED").inc()
            raise
        key = chunks_key(message.tenant, message.doc_id, message.version)
        await self.deps.blobstore.put(key, parsed.payload, content_type="application/json")
        await self.out.send(
            ChunksReady(
                correlation_id=message.correlation_id,
                tenant=message.tenant,
                doc_id=message.doc_id,
                version=message.version,
                chunks_key=key,
                chunk_count=parsed.chunk_count,
                groups=message.groups,
            ).to_json()
        )
        if parsed.ocr_pages:
            await _record_ocr(reg, message, parsed.ocr_pages)
        await reg.advance(
            message.tenant,
            message.doc_id,
            message.version,
            DocumentStatus.PARSED,
            chunk_count=parsed.chunk_count,
            page_count=parsed.page_count,
            title=parsed.title,
            doc_type=parsed.doc_type,
        )
        metrics.DOCUMENTS.labels("PARSED").inc()
        if parsed.page_count:
            metrics.PAGES_PARSED.inc(parsed.page_count)
        log.info("parsed", chunks=parsed.chunk_count, pages=parsed.page_count)

    def _job(self, data: bytes, message: DocumentFetched) -> ParseJob:
        settings = self.deps.settings
        lim = settings.limits
        return ParseJob(
            data=data,
            filename=message.path,
            content_type=message.content_type,
            max_bytes=settings.max_document_bytes,
            limits=ParseLimits(
                max_chars=lim.max_chars,
                max_pages=lim.max_pages,
                max_chunks=lim.max_chunks,
                max_title_chars=lim.max_title_chars,
                max_table_cells=lim.max_table_cells,
                max_unzipped_bytes=lim.max_unzipped_bytes,
                max_xml_bytes=lim.max_xml_bytes,
                max_image_pixels=lim.max_image_pixels,
            ),
            max_tokens=self.max_tokens,
            overlap_tokens=min(settings.chunking.overlap_tokens, self.max_tokens // 4),
            title_hint=message.title,
            source=message.source,
            path=message.path,
        )


class EmbedStage(BatchHandler):
    """ChunksReady (many messages) -> one length-sorted encode -> ChunksEmbedded per document."""

    service = "embedder"

    def __init__(self, deps: StageDeps, embedder: Embedder, out: Queue) -> None:
        self.deps = deps
        self.embedder = embedder
        self.out = out

    async def on_give_up(self, message: Message, reason: str) -> None:
        await _record_give_up(self.deps.registry, message, reason)

    async def on_permanent(self, message: Message, error: PermanentError) -> None:
        await _record_permanent(self.deps.registry, message, error)

    async def handle_batch(self, deliveries: Sequence[Delivery]) -> list[BaseException | None]:
        results: list[BaseException | None] = [None] * len(deliveries)
        work: list[tuple[int, ChunksReady, ChunkSet]] = []
        for i, d in enumerate(deliveries):
            msg = d.message
            with bound(tenant=msg.tenant, doc_id=msg.doc_id, correlation_id=msg.correlation_id):
                try:
                    if not isinstance(msg, ChunksReady):
                        raise PermanentError(
                            f"embedder cannot handle {msg.type}", code="wrong_queue"
                        )
                    record = await self.deps.registry.get(msg.tenant, msg.doc_id, msg.version)
                    if (why := _should_skip(record, DocumentStatus.EMBEDDED)) is not None:
                        log.info("skip", why=why)
                        continue
                    raw = await _bounded_get(self.deps, msg.chunks_key, "chunks")
                    work.append((i, msg, ChunkSet.model_validate_json(raw)))
                except Exception as exc:  # noqa: BLE001 - classified by the worker
                    results[i] = exc
        if not work:
            return results
        # One encode across all documents: the engine sorts every chunk by length.
        texts = [
            passage_text(c.text, cs.doc.title, c.section) for _, _, cs in work for c in cs.chunks
        ]
        titles = [cs.doc.title for _, _, cs in work for _ in cs.chunks]
        try:
            vectors = await self.embedder.embed_documents(texts, titles)
        except Exception as exc:  # noqa: BLE001 - the whole batch retries
            for i, _, _ in work:
                results[i] = exc
            return results
        offset = 0
        for i, msg, cs in work:
            n = len(cs.chunks)
            try:
                await self._emit(msg, cs, vectors[offset : offset + n])
            except Exception as exc:  # noqa: BLE001
                results[i] = exc
            offset += n
        return results

    async def _emit(self, msg: ChunksReady, cs: ChunkSet, vectors: np.ndarray) -> None:
        key = records_key(msg.tenant, msg.doc_id, msg.version, self.embedder.model_id)
        payload = EmbeddedChunkSet.build(cs, vectors, self.embedder.model_id)
        await self.deps.blobstore.put(
            key, payload.model_dump_json().encode(), content_type="application/json"
        )
        await self.out.send(
            ChunksEmbedded(
                correlation_id=msg.correlation_id,
                tenant=msg.tenant,
                doc_id=msg.doc_id,
                version=msg.version,
                records_key=key,
                chunk_count=len(cs.chunks),
                model_id=self.embedder.model_id,
                dim=payload.dim,
            ).to_json()
        )
        await self.deps.registry.advance(
            msg.tenant, msg.doc_id, msg.version, DocumentStatus.EMBEDDED
        )
        metrics.DOCUMENTS.labels("EMBEDDED").inc()


class IndexStage(OneByOneHandler):
    """ChunksEmbedded -> bulk upsert (deterministic ids) -> drop older versions -> INDEXED."""

    service = "indexer"

    def __init__(self, deps: StageDeps, index: VectorIndex) -> None:
        self.deps = deps
        self.index = index

    async def on_give_up(self, message: Message, reason: str) -> None:
        await _record_give_up(self.deps.registry, message, reason)

    async def on_permanent(self, message: Message, error: PermanentError) -> None:
        await _record_permanent(self.deps.registry, message, error)

    async def handle(self, message: Message) -> None:
        if isinstance(message, DocumentDeleted):
            await self._delete(message)
            return
        if isinstance(message, DocumentAudience):
            await self._audience(message)
            return
        if not isinstance(message, ChunksEmbedded):
            raise PermanentError(f"indexer cannot handle {message.type}", code="wrong_queue")
        reg = self.deps.registry
        record = await reg.get(message.tenant, message.doc_id, message.version)
        if (why := _should_skip(record, DocumentStatus.INDEXED)) is not None:
            log.info("skip", why=why)
            return
        assert record is not None
        if await _superseded(reg, record):
            return
        if message.dim != self.index.dim:
            raise PermanentError(
                f"vector dimension {message.dim} from model {message.model_id} does not match the "
                f"index dimension {self.index.dim}",
                code="dimension_mismatch",
            )
        payload = EmbeddedChunkSet.model_validate_json(
            await _bounded_get(self.deps, message.records_key, "vectors")
        )
        # the registry's audience: it may have changed since the version was fetched
        records = payload.records(
            message.tenant, message.doc_id, message.version, utcnow(), record.groups
        )
        await self.index.upsert(records)
        metrics.CHUNKS_INDEXED.inc(len(records))
        if await _superseded(reg, record):  # a newer version landed while we wrote
            await self.index.delete_document(
                message.tenant, message.doc_id, versions=[message.version]
            )
            return
        after = await reg.get(message.tenant, message.doc_id, message.version)
        if after is not None and after.status is DocumentStatus.DELETED:
            # deleted (DELETE /v1/documents/{id}) while we wrote: take our chunks out again
            await self.index.delete_document(
                message.tenant, message.doc_id, versions=[message.version]
            )
            log.info("deleted while indexing; chunks removed")
            return
        if after is not None and after.groups != record.groups:
            # the audience changed while we wrote: its DocumentAudience may have run before our
            # chunks were in, so apply it to them now (whichever runs last, the registry wins)
            await self.index.set_groups(
                message.tenant, message.doc_id, message.version, after.groups
            )
        # Only versions known to be older go: "all but mine" would also remove a newer version
        # indexed between our check above and this delete.
        older = [v.version for v in await reg.versions(message.tenant, message.doc_id)
                 if v.seq < record.seq]  # fmt: skip
        removed = await self.index.delete_document(message.tenant, message.doc_id, versions=older)
        await reg.advance(
            message.tenant,
            message.doc_id,
            message.version,
            DocumentStatus.INDEXED,
            chunk_count=len(records),
        )
        metrics.DOCUMENTS.labels("INDEXED").inc()
        log.info("indexed", chunks=len(records), stale_chunks_removed=removed)

    async def _audience(self, message: DocumentAudience) -> None:
        """A changed audience (same content): every live version takes ``message.groups``, in
        the registry first, then in the index (vectors untouched). Registry first: an index
        stage writing a version meanwhile re-reads the registry after its upsert and applies
        what it finds, so neither order leaves old groups in the index. A redelivery redoes
        both (idempotent); a reordered older change is undone by the next sync, which compares
        the registry with the source."""
        registry = self.deps.registry
        changed = 0
        for v in await registry.versions(message.tenant, message.doc_id):
            if v.status is DocumentStatus.DELETED:
                continue
            await registry.set_groups(message.tenant, message.doc_id, v.version, message.groups)
            changed += await self.index.set_groups(
                message.tenant, message.doc_id, v.version, message.groups
            )
        metrics.AUDIENCE_UPDATES.inc()
        log.info("audience updated", chunks=changed, groups=list(message.groups))

    async def _delete(self, message: DocumentDeleted) -> None:
        removed = await self.index.delete_document(message.tenant, message.doc_id)
        current = await self.deps.registry.current(message.tenant, message.doc_id)
        if current is not None:
            await self.deps.registry.advance(
                message.tenant,
                message.doc_id,
                current.version,
                DocumentStatus.DELETED,
                reason=f"removed from source {message.source}: {message.path}",
            )
        metrics.DOCUMENTS.labels("DELETED").inc()
        log.info("document deleted", chunks_removed=removed)
