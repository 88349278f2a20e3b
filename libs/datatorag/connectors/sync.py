"""The sync engine: one pass over a source, turning it into ``DocumentFetched`` /
``DocumentDeleted`` messages on the parse queue.

Per entry: skip when the change hints (etag, or size + mtime) equal those recorded with the
document's current version; else download (streamed, size-limited, spooled to a temporary file
while hashing); when the SHA-256 equals the current version's the document is unchanged; else the
raw bytes go to the blob store under ``raw_key`` (content-addressed), the version to the registry
(status FETCHED, ``seq`` = fetch time in ns) and a ``DocumentFetched`` to the parse queue.

Crash safety (delivery is at-least-once, every step idempotent):

* blob -> registry -> queue. A crash before the registry write leaves an orphan blob under a
  content-addressed key that the next sync finds and reuses.
* A crash (or a queue outage) after the registry write and before the send leaves a FETCHED
  version whose message may be lost. The next sync re-sends ``DocumentFetched`` for every current
  FETCHED version created since the start of the oldest of the trailing runs that did not finish
  "ok" (a crashed run stays "running" in the registry), and, as a backstop, for any FETCHED
  version untouched for ``resend_after_s``. Consumers are idempotent, so a spare message is cheap.
* A tombstone is re-sent while the document is still not DELETED ``resend_after_s`` later.

Audiences: every version gets the groups its source assigns (``datatorag.connectors.audience``);
when they differ from the current version's while the content did not change (or a new version
changes them), a ``DocumentAudience`` goes to the parse queue and the indexer rewrites the groups
in the registry and the index, without re-embedding. The registry keeps the old groups until
then, so a lost message is sent again by the next sync.

Bad entries (hostile names, zero bytes, over the size limit, changed while downloading, a download
error) become FAILED versions with a precise ``error_code`` and are counted; they never stop the
sync. A failed refresh of a document that has a good current version is stored *below* it (lower
``seq``) so the searchable version stays current; a new document's failure becomes current. Only
errors of the source as a whole (unreachable, wrong credentials) or of our own dependencies end
the run, recorded as ``failed`` with the reason; a run whose listing failed deletes nothing.

A lease in the registry (``sync:{tenant}:{source}``), renewed while the run lasts, guarantees that
two syncs of one source never overlap, across replicas too.

This module runs the sync; its parts live next to it: ``lease`` (the sync lease), ``hints`` (the
change hints), ``spool`` (downloads spooled to temporary files) and ``outbox`` (the batched
messages to the parse queue).
"""

from __future__ import annotations

import asyncio
import hashlib
import mimetypes
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from datatorag.config import Settings
from datatorag.connectors import metrics
from datatorag.connectors.base import Source, SourceEntry, SourceError, closing_stream
from datatorag.connectors.cursor import BlobCursorStore, CursorStore, State
from datatorag.connectors.fairness import FairLimiter
from datatorag.connectors.hints import deleted_by_user, hint_metadata, hints_unchanged
from datatorag.connectors.lease import LeaseLost, SyncLease, hold_sync_lease
from datatorag.connectors.outbox import Outbox
from datatorag.connectors.paths import UnsafePath, check_path, display_path
from datatorag.connectors.spool import Spooled, put_spooled, spool_download
from datatorag.domain.contracts import DocumentAudience, DocumentDeleted, DocumentFetched
from datatorag.domain.errors import PermanentError, TransientError
from datatorag.domain.keys import doc_id_for, raw_key, version_of
from datatorag.domain.models import DocumentRecord, DocumentStatus, utcnow
from datatorag.observability.log import get_logger
from datatorag.ports.blobstore import BlobStore
from datatorag.ports.queue import Queue
from datatorag.ports.registry import Registry, RunTrigger, RunType, SyncRun

log = get_logger("connector.sync")

COUNT_KEYS = (
    "seen", "new", "changed", "unchanged", "deleted", "failed", "resent", "pending_delete",
    "audience",
)  # fmt: skip
_KNOWN_LIMIT = 10_000_000


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class SyncOptions:
    delete_grace_s: float = 3600.0
    resend_after_s: float | None = None  # None: settings.stalled_after_s
    lease_ttl_s: float = 120.0
    concurrency: int | None = None  # None: source.max_concurrency
    owner: str = field(default_factory=default_owner)
    verify_after_fetch: bool = True  # re-stat after download to catch a file changed meanwhile
    spool_memory_bytes: int = 8 << 20  # larger downloads spill to a temporary file
    send_batch_wait_s: float = 0.05  # parse-queue messages go out in batches of <= 10
    trigger: RunTrigger = RunTrigger.SCHEDULED  # recorded with the run


async def sync_source(
    source: Source,
    *,
    registry: Registry,
    blobstore: BlobStore,
    parse_queue: Queue,
    settings: Settings,
    cursor_store: CursorStore | None = None,
    options: SyncOptions | None = None,
    limiter: FairLimiter | None = None,
) -> SyncRun:
    """Run one sync of ``source``; returns the recorded run (status ``ok`` or ``failed``).

    Raises ``SyncInProgress`` (``datatorag.connectors.lease``) when another sync of the source
    holds the lease.
    """
    opts = options or SyncOptions()
    async with hold_sync_lease(
        registry, source.tenant, source.id, owner=opts.owner, ttl_s=opts.lease_ttl_s
    ) as lease:
        job = _SyncJob(
            source,
            registry=registry,
            blobstore=blobstore,
            parse_queue=parse_queue,
            settings=settings,
            cursor_store=cursor_store or BlobCursorStore(blobstore),
            options=opts,
            limiter=limiter,
            lease=lease,
        )
        return await job.run()


class _SyncJob:
    def __init__(
        self,
        source: Source,
        *,
        registry: Registry,
        blobstore: BlobStore,
        parse_queue: Queue,
        settings: Settings,
        cursor_store: CursorStore,
        options: SyncOptions,
        limiter: FairLimiter | None,
        lease: SyncLease,
    ) -> None:
        self.source = source
        self.tenant = source.tenant
        self.registry = registry
        self.blobstore = blobstore
        self.queue = parse_queue
        self.settings = settings
        self.cursors = cursor_store
        self.opts = options
        self.concurrency = options.concurrency or source.max_concurrency
        self.limiter = limiter or FairLimiter(self.concurrency)
        self.resend_after_s = (
            options.resend_after_s
            if options.resend_after_s is not None
            else float(settings.stalled_after_s)
        )
        self.max_bytes = settings.max_document_bytes
        self.run_record = SyncRun(
            tenant=self.tenant, source=source.id, run_id=uuid.uuid4().hex, trigger=options.trigger
        )
        self.counts = dict.fromkeys(COUNT_KEYS, 0)
        self.known: dict[str, DocumentRecord] = {}
        self.seen: set[str] = set()
        self.state: State = {}
        self.resend_since: datetime | None = None
        self.lease = lease
        self.failures: list[dict[str, str]] = []  # first few, for the log line
        self.outbox = Outbox(parse_queue, max_wait_s=options.send_batch_wait_s)

    # -- run -----------------------------------------------------------------------------------
    async def run(self) -> SyncRun:
        run = self.run_record
        ok_before = await self._note_unfinished_runs()
        run.type = RunType.INCREMENTAL if ok_before else RunType.BATCH
        await self.registry.record_sync_run(run)
        log.info("sync_started", tenant=self.tenant, source=self.source.id, run_id=run.run_id)
        try:
            self.state = await self.cursors.load(self.tenant, self.source.id)
            records = await self.registry.find(
                tenant=self.tenant, source=self.source.id, limit=_KNOWN_LIMIT
            )
            self.known = {r.doc_id: r for r in records}
            try:
                list_error = await self._process_listing()
                if list_error is None:
                    await self._deletions()
            except BaseException:
                await self._close_outbox_quietly()
                raise
            await self.outbox.close()
            await self._save_state()
            if list_error is not None:
                raise list_error
            run.status = "ok"
        except (
            SourceError,
            PermanentError,
            TransientError,
            LeaseLost,
            OSError,
            TimeoutError,
        ) as exc:
            run.status = "failed"
            code = getattr(exc, "code", type(exc).__name__)
            run.error = f"{code}: {exc}"
        except Exception as exc:  # our own dependency (queue, blob store, registry) broke
            log.exception("sync_dependency_error", source=self.source.id, tenant=self.tenant)
            run.status = "failed"
            run.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        except BaseException:  # cancelled (shutdown): record, re-raise
            run.status = "failed"
            run.error = "cancelled"
            await self._finish(run)
            raise
        await self._finish(run)
        return run

    async def _close_outbox_quietly(self) -> None:
        """Send what is buffered on the error path, never masking the first error."""
        try:
            await asyncio.shield(self.outbox.close())
        except BaseException:  # noqa: BLE001 - the run already failed; the next sync re-sends
            log.warning("outbox_flush_failed", source=self.source.id, tenant=self.tenant)

    async def _finish(self, run: SyncRun) -> None:
        run.finished_at = utcnow()
        self.counts["seen"] = len(self.seen)
        run.counts = dict(self.counts)
        run.errors = self.failures[:20]
        kind = self.source.kind
        metrics.SYNC_RUNS.labels(kind, run.status).inc()
        metrics.SYNC_SECONDS.labels(kind).observe(
            (run.finished_at - run.started_at).total_seconds()
        )
        for outcome, n in self.counts.items():
            if n and outcome not in ("pending_delete", "seen"):
                metrics.SYNC_DOCUMENTS.labels(kind, outcome).inc(n)
        try:
            await asyncio.shield(self.registry.record_sync_run(run))
        except Exception:
            log.exception("sync_run_record_failed", source=self.source.id, run_id=run.run_id)
        log.info(
            "sync_finished",
            tenant=self.tenant,
            source=self.source.id,
            run_id=run.run_id,
            status=run.status,
            error=run.error,
            seconds=round((run.finished_at - run.started_at).total_seconds(), 3),
            failures=self.failures[:10] or None,
            **self.counts,
        )

    async def _note_unfinished_runs(self) -> bool:
        """Find the trailing runs that did not finish "ok": their versions' messages may be lost.
        Returns whether an earlier run finished ok (this one is then INCREMENTAL, else BATCH)."""
        runs = await self.registry.sync_runs(self.tenant, self.source.id, limit=20)
        ok_before = False
        for prev in runs:  # newest first
            if prev.type is RunType.REINDEX:
                continue  # a reindex of the source's documents, not a sync of the source
            if prev.status == "ok":
                ok_before = True
                break
            self.resend_since = prev.started_at
            if prev.status == "running":  # we hold the lease, so its owner is gone
                prev.status = "failed"
                prev.error = prev.error or "interrupted: the connector stopped during this run"
                prev.finished_at = prev.finished_at or utcnow()
                await self.registry.record_sync_run(prev)
        return ok_before

    async def _process_listing(self) -> BaseException | None:
        """Stream the listing into bounded concurrent entry tasks; return the listing's error."""
        gate = asyncio.Semaphore(self.concurrency)
        list_error: BaseException | None = None

        async def guarded(entry: SourceEntry, doc_id: str) -> None:
            try:
                await self._entry(entry, doc_id)
            finally:
                gate.release()

        try:
            async with asyncio.TaskGroup() as tg:
                try:
                    async with closing_stream(self.source.list()) as listing:
                        async for entry in listing:
                            self.lease.check()
                            doc_id = doc_id_for(self.source.id, entry.key)
                            if doc_id in self.seen:
                                continue  # a listing that repeats itself
                            self.seen.add(doc_id)
                            if self._unchanged_fast(entry, doc_id):
                                # the common case of an incremental sync: no task, no I/O
                                # (but an upload's sidecar)
                                self.counts["unchanged"] += 1
                                await self._unchanged(entry, doc_id, self.known[doc_id])
                                continue
                            await gate.acquire()
                            tg.create_task(guarded(entry, doc_id))
                except (SourceError, PermanentError, TransientError, OSError, TimeoutError) as exc:
                    list_error = exc  # let documents already under way finish
        except BaseExceptionGroup as group:
            raise group.exceptions[0] from None
        return list_error

    # -- one entry -----------------------------------------------------------------------------
    def _unchanged_fast(self, entry: SourceEntry, doc_id: str) -> bool:
        if entry.error_code is not None:
            return False
        try:
            check_path(entry.path)
        except UnsafePath:
            return False
        return self._hints_unchanged(entry, doc_id, self.known.get(doc_id))

    def _hints_unchanged(
        self, entry: SourceEntry, doc_id: str, current: DocumentRecord | None
    ) -> bool:
        return hints_unchanged(entry, current, self.state.get("touched", {}).get(doc_id))

    async def _entry(self, entry: SourceEntry, doc_id: str) -> None:
        current = self.known.get(doc_id)
        if entry.error_code is not None:
            await self._fail(entry, doc_id, current, entry.error_code, entry.error or "bad entry")
            return
        try:
            check_path(entry.path)
        except UnsafePath as exc:
            await self._fail(entry, doc_id, current, exc.code, exc.reason)
            return
        if self._hints_unchanged(entry, doc_id, current):
            self.counts["unchanged"] += 1
            assert current is not None
            await self._unchanged(entry, doc_id, current)
            return
        if entry.size == 0:
            await self._fail(entry, doc_id, current, "empty_file", "the file is empty (0 bytes)")
            return
        if entry.size is not None and entry.size > self.max_bytes:
            await self._fail(
                entry,
                doc_id,
                current,
                "too_large",
                f"{entry.size} bytes exceeds the limit of {self.max_bytes}",
            )
            return
        async with self.limiter.slot(self.source.key):
            self.lease.check()
            try:
                spooled = await spool_download(
                    self.source,
                    entry,
                    max_bytes=self.max_bytes,
                    memory_bytes=self.opts.spool_memory_bytes,
                    verify_after_fetch=self.opts.verify_after_fetch,
                )
            except PermanentError as exc:
                if isinstance(exc, SourceError):
                    raise
                await self._fail(entry, doc_id, current, exc.code, exc.reason)
                return
            except SourceError:
                raise  # the server went away: end the run, do not mark every file failed
            except (TransientError, OSError, TimeoutError) as exc:
                await self._fail(
                    entry,
                    doc_id,
                    current,
                    "fetch_error",
                    f"download failed: {type(exc).__name__}: {exc}",
                )
                return
            with spooled.file:
                await self._store(entry, doc_id, current, spooled)

    async def _store(
        self,
        entry: SourceEntry,
        doc_id: str,
        current: DocumentRecord | None,
        spooled: Spooled,
    ) -> None:
        sha, size = spooled.sha256, spooled.size
        version = version_of(sha)
        if (
            current is not None
            and current.content_hash == sha
            and (current.status != DocumentStatus.DELETED or deleted_by_user(current))
        ):
            self.counts["unchanged"] += 1
            if entry.size is not None and entry.mtime is not None:
                # same bytes, new hints (a touch): remember them so the next sync skips it
                self.state.setdefault("touched", {})[doc_id] = [entry.size, entry.mtime, version]
            await self._unchanged(entry, doc_id, current)
            return
        try:
            groups = await self._groups(entry)
        except ValueError as exc:
            await self._fail(entry, doc_id, current, "bad_audience", str(exc))
            return
        if current is not None and current.status != DocumentStatus.DELETED:
            # the older versions stay searchable until this one is in: they take its audience
            # at once (a narrowed audience must not wait for the new content's pipeline)
            await self._audience_changed(current, groups)

        key = raw_key(self.tenant, self.source.id, doc_id, sha)
        content_type = entry.content_type or mimetypes.guess_type(entry.path)[0]
        if not await self.blobstore.exists(key):  # content-addressed: a redo reuses the blob
            metadata = {
                "sha256": sha,
                "tenant": quote(self.tenant, safe=""),
                "source": quote(self.source.id, safe=""),
                "doc_id": doc_id,
                "path": quote(entry.path, safe="/")[:1024],
            }
            await put_spooled(
                self.blobstore,
                key,
                spooled,
                memory_bytes=self.opts.spool_memory_bytes,
                metadata=metadata,
                content_type=content_type,
            )
        self.lease.check()
        title = entry.title or entry.path.rsplit("/", 1)[-1]
        record = DocumentRecord(
            tenant=self.tenant,
            doc_id=doc_id,
            version=version,
            seq=time.time_ns(),
            source=self.source.id,
            path=entry.path,
            content_hash=sha,
            status=DocumentStatus.FETCHED,
            title=title,
            size=size,
            blob_key=key,
            metadata=hint_metadata(entry, content_type),
            groups=groups,
        )
        stored = await self.registry.put_version(record)
        revival = 0
        while not stored and revival < 100:
            # The bytes equal an older version of this document (a revert, or a file restored
            # after deletion), and versions are immutable: store the content again as a new
            # revival version, which becomes current through its higher seq.
            revival += 1
            record = record.model_copy(update={"version": f"{version}-r{revival}"})
            stored = await self.registry.put_version(record)
        if not stored:
            raise PermanentError(
                f"{display_path(entry.path)}: too many revivals of one version",
                code="version_exists",
            )
        if revival:
            log.info(
                "version_revived",
                source=self.source.id,
                doc_id=doc_id,
                version=record.version,
                path=display_path(entry.path),
            )
        await self._send_fetched(record, content_type)
        self.known[doc_id] = record
        self.state.get("touched", {}).pop(doc_id, None)
        self.counts["new" if current is None else "changed"] += 1

    async def _send_fetched(self, record: DocumentRecord, content_type: str | None) -> None:
        assert record.blob_key is not None and record.size is not None
        message = DocumentFetched(
            tenant=record.tenant,
            doc_id=record.doc_id,
            version=record.version,
            seq=record.seq,
            source=record.source,
            path=record.path,
            blob_key=record.blob_key,
            content_hash=record.content_hash,
            size=record.size,
            content_type=content_type,
            title=record.title,
            groups=record.groups,
        )
        await self.outbox.put(message.to_json())

    async def _groups(self, entry: SourceEntry) -> tuple[str, ...]:
        """The entry's audience: its upload's, its record's, the source's rules, the source's
        default (``datatorag.connectors.audience``); ``ValueError`` for an unreadable one."""
        uploaded = await self.source.sidecar_audience(entry)
        return uploaded or self.source.audience.groups_for(entry.path, entry.groups)

    async def _unchanged(self, entry: SourceEntry, doc_id: str, current: DocumentRecord) -> None:
        """Same content: re-send a lost message, and apply a changed audience."""
        await self._maybe_resend(current)
        if current.status == DocumentStatus.DELETED:
            return  # deleted through the API: forgotten until the source changes it
        try:
            groups = await self._groups(entry)
        except ValueError as exc:
            # the audience cannot be told: it stays as it was, and the run says why
            self.counts["failed"] += 1
            if len(self.failures) < 50:
                self.failures.append(
                    {
                        "path": display_path(entry.path),
                        "doc_id": current.doc_id,
                        "code": "bad_audience",
                        "reason": str(exc),
                    }
                )
            return
        await self._audience_changed(current, groups)

    async def _audience_changed(self, current: DocumentRecord, groups: tuple[str, ...]) -> None:
        if current.groups == groups:
            return
        self.lease.check()
        message = DocumentAudience(
            tenant=self.tenant,
            doc_id=current.doc_id,
            source=self.source.id,
            path=current.path,
            groups=groups,
        )
        await self.outbox.put(message.to_json())
        self.counts["audience"] += 1
        log.info(
            "audience_changed",
            tenant=self.tenant,
            source=self.source.id,
            doc_id=current.doc_id,
            old=list(current.groups),
            new=list(groups),
        )

    async def _maybe_resend(self, current: DocumentRecord) -> None:
        """Re-send the message of a FETCHED version that may have been lost (see module doc)."""
        if current.status != DocumentStatus.FETCHED or current.blob_key is None:
            return
        lost = self.resend_since is not None and current.created_at >= self.resend_since
        stale = (utcnow() - current.updated_at).total_seconds() >= self.resend_after_s
        if lost or stale:
            await self._send_fetched(current, current.metadata.get("content_type"))
            self.counts["resent"] += 1

    async def _fail(
        self,
        entry: SourceEntry,
        doc_id: str,
        current: DocumentRecord | None,
        code: str,
        reason: str,
    ) -> None:
        self.counts["failed"] += 1
        shown = display_path(entry.path)
        if len(self.failures) < 50:
            # doc_id: the gateway shows a failure only to callers who may see that document
            self.failures.append({"path": shown, "doc_id": doc_id, "code": code, "reason": reason})
        # Deterministic per (failure, hints): the same failure at the next sync is a no-op.
        marker = f"{code}\x00{entry.size}\x00{entry.mtime}\x00{entry.etag}"
        version = "failed-" + hashlib.sha256(marker.encode()).hexdigest()[:12]
        seq = time.time_ns()
        good_current = current is not None and current.status not in (
            DocumentStatus.FAILED,
            DocumentStatus.DELETED,
        )
        if good_current:
            assert current is not None
            seq = min(seq, current.seq - 1)  # keep the searchable version current
        record = DocumentRecord(
            tenant=self.tenant,
            doc_id=doc_id,
            version=version,
            seq=seq,
            source=self.source.id,
            path=shown,
            content_hash="",
            status=DocumentStatus.FAILED,
            reason=reason,
            error_code=code,
            title=shown.rsplit("/", 1)[-1][:255],
            size=entry.size,
            metadata=hint_metadata(entry, None),
            # a failure's name can say as much as its content: listed for the same audience
            # (the record's own, unless that is what failed; an upload's sidecar is not read)
            groups=self.source.audience.groups_for(
                entry.path, entry.groups if code != "bad_audience" else None
            ),
        )
        self.lease.check()
        if await self.registry.put_version(record):
            # an adapter that stores every new version as FETCHED still ends up FAILED
            await self.registry.fail(self.tenant, doc_id, version, reason, code=code)
            if not good_current:
                self.known[doc_id] = record
        log.warning(
            "document_failed",
            tenant=self.tenant,
            source=self.source.id,
            doc_id=doc_id,
            path=shown,
            code=code,
            reason=reason,
        )

    # -- deletions -----------------------------------------------------------------------------
    async def _deletions(self) -> None:
        now = time.time()
        missing: dict[str, dict[str, Any]] = self.state.setdefault("missing", {})
        for doc_id in list(missing):
            record = self.known.get(doc_id)
            if record is None or doc_id in self.seen or record.status == DocumentStatus.DELETED:
                del missing[doc_id]
        for doc_id, record in self.known.items():
            if doc_id in self.seen or record.status == DocumentStatus.DELETED:
                continue
            mark = missing.setdefault(doc_id, {"since": now, "sent": None})
            if now - mark["since"] < self.opts.delete_grace_s:
                self.counts["pending_delete"] += 1
                continue
            if mark["sent"] is not None and now - mark["sent"] < self.resend_after_s:
                continue  # tombstone already on its way
            self.lease.check()
            tombstone = DocumentDeleted(
                tenant=self.tenant, doc_id=doc_id, source=self.source.id, path=record.path
            )
            await self.outbox.put(tombstone.to_json())
            mark["sent"] = now
            self.counts["deleted"] += 1
        touched = self.state.get("touched", {})
        for doc_id in [d for d in touched if d not in self.seen]:
            del touched[doc_id]

    async def _save_state(self) -> None:
        self.state["updated_at"] = datetime.now(UTC).isoformat()
        await self.cursors.save(self.tenant, self.source.id, self.state)
