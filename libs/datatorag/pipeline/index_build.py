"""Build a model's index blue/green from what the pipeline stored: ``reindex`` (a new model: the
stored chunk sets embedded again, through the embedding cache) and ``rebuild`` (the same model:
the stored embedded records, nothing embedded; disaster recovery).

Neither fetches nor parses anything. The build fills a new physical index (``IndexAdmin.create``)
while readers keep using the serving one, then ``promote`` swaps the logical name onto it.

* Resumable: a checkpoint object (``index-builds/<model>-<dim>.json``) names the target index and
  the document versions already in it; it is written every few documents, so a crashed or
  cancelled build resumes where it stopped (chunk ids are deterministic: a redo overwrites).
* Cancel (``cancel_build``) drops the unfinished target; the serving index was never touched.
* Catch-up: documents indexed while the build ran are picked up by further passes, and versions
  superseded or deleted meanwhile are taken out of the target, before the swap. Run it again
  after switching the services to the new model to pick up what the old model indexed since
  (cheap: the embedding cache has every chunk embedded so far).
* The indexes a promote replaced, and for a model change the old model's index, are retired
  with a drop-after time; ``drop_retired`` deletes those past it (the grace period).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import orjson
from pydantic import BaseModel, Field

from datatorag.domain.errors import NotFound
from datatorag.domain.keys import chunks_key, records_key, slug
from datatorag.domain.models import ChunkRecord, DocumentRecord, DocumentStatus, utcnow
from datatorag.embedding.passage import passage_text
from datatorag.observability.log import get_logger
from datatorag.pipeline.payloads import ChunkSet, EmbeddedChunkSet
from datatorag.ports import (
    BlobStore,
    Embedder,
    IndexAdmin,
    Registry,
    RunTrigger,
    RunType,
    SyncRun,
    VectorIndex,
)

log = get_logger(__name__)

_DOCS_LIMIT = 10_000_000
_RETIRED_KEY = "index-builds/retired.json"


def checkpoint_key(model_id: str, dim: int) -> str:
    return f"index-builds/{slug(model_id)}-{dim}.json"


class BuildCheckpoint(BaseModel):
    kind: str  # reindex | rebuild
    model_id: str
    dim: int
    target: str
    started_at: datetime = Field(default_factory=utcnow)
    done: list[str] = Field(default_factory=list)  # "tenant/doc_id/version"
    chunks: int = 0


class Retired(BaseModel):
    name: str
    model_id: str
    dim: int
    drop_after: datetime
    # the old model's index after a model change: dropped even though its (old) logical name
    # still points at it; an index a promote replaced is dropped only while it serves nothing
    model_change: bool = False


@dataclass
class BuildProgress:
    """What a progress bar shows: documents (done of total), chunks, how many vectors came from
    the cache or the stored records (not embedded), and an ETA from the rate so far."""

    kind: str
    target: str
    documents_total: int = 0
    documents_done: int = 0
    chunks: int = 0
    embedded: int = 0  # vectors computed by the model in this run
    reused: int = 0  # vectors from the cache or the stored records
    missing: list[str] = field(default_factory=list)  # versions without stored objects
    started: float = field(default_factory=time.monotonic)
    state: str = "running"  # running | done | cancelled | failed

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    @property
    def chunks_per_s(self) -> float:
        return self.chunks / self.seconds if self.seconds > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        if not self.documents_done or self.documents_done >= self.documents_total:
            return None if self.documents_done < self.documents_total else 0.0
        per_doc = self.seconds / self.documents_done
        return per_doc * (self.documents_total - self.documents_done)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "target": self.target,
            "state": self.state,
            "documents_total": self.documents_total,
            "documents_done": self.documents_done,
            "chunks": self.chunks,
            "embedded": self.embedded,
            "reused": self.reused,
            "missing": len(self.missing),
            "seconds": round(self.seconds, 3),
            "chunks_per_s": round(self.chunks_per_s, 1),
            "eta_s": None if self.eta_s is None else round(self.eta_s, 1),
        }


ProgressHook = Callable[[BuildProgress], None]


class VectorSource(Protocol):
    """Where a build's vectors come from."""

    kind: str
    model_id: str
    dim: int

    async def records(self, doc: DocumentRecord, progress: BuildProgress) -> EmbeddedChunkSet:
        """The version's chunks with vectors; ``NotFound`` when its stored objects are gone."""
        ...


class StoredVectors:
    """Rebuild: the embedded records the embed stage stored for this model."""

    kind = "rebuild"

    def __init__(self, blobstore: BlobStore, model_id: str, dim: int) -> None:
        self.blobstore, self.model_id, self.dim = blobstore, model_id, dim

    async def records(self, doc: DocumentRecord, progress: BuildProgress) -> EmbeddedChunkSet:
        key = records_key(doc.tenant, doc.doc_id, doc.version, self.model_id)
        payload = EmbeddedChunkSet.model_validate_json(await self.blobstore.get(key))
        if payload.dim != self.dim:
            raise NotFound(f"{key} holds {payload.dim}-d vectors, not {self.dim}-d")
        progress.reused += len(payload.chunks)
        return payload


class FreshVectors:
    """Reindex: the stored chunk sets, embedded by ``embedder`` (a ``CachedEmbedder``: what the
    model embedded before is not embedded again); the result is stored like the embed stage's,
    so a later ``rebuild`` of the new model needs no model either."""

    kind = "reindex"

    def __init__(self, blobstore: BlobStore, embedder: Embedder) -> None:
        self.blobstore, self.embedder = blobstore, embedder
        self.model_id, self.dim = embedder.model_id, embedder.dim

    async def records(self, doc: DocumentRecord, progress: BuildProgress) -> EmbeddedChunkSet:
        raw = await self.blobstore.get(chunks_key(doc.tenant, doc.doc_id, doc.version))
        cs = ChunkSet.model_validate_json(raw)
        misses_before = getattr(self.embedder, "misses", None)
        vectors = await self.embedder.embed_documents(
            [passage_text(c.text, cs.doc.title, c.section) for c in cs.chunks],
            [cs.doc.title for _ in cs.chunks],
        )
        misses = getattr(self.embedder, "misses", None)
        n = len(cs.chunks)
        fresh = n if misses is None or misses_before is None else misses - misses_before
        progress.embedded += fresh
        progress.reused += n - fresh
        payload = EmbeddedChunkSet.build(cs, vectors, self.model_id)
        key = records_key(doc.tenant, doc.doc_id, doc.version, self.model_id)
        await self.blobstore.put(
            key, payload.model_dump_json().encode(), content_type="application/json"
        )
        return payload


class IndexBuilder:
    def __init__(
        self,
        *,
        registry: Registry,
        blobstore: BlobStore,
        admin: IndexAdmin,
        vectors: VectorSource,
        on_progress: ProgressHook | None = None,
        checkpoint_every: int = 20,
        docs_per_batch: int = 8,
        max_passes: int = 5,
    ) -> None:
        self.registry = registry
        self.blobstore = blobstore
        self.admin = admin
        self.vectors = vectors
        self.on_progress = on_progress or (lambda _p: None)
        self.checkpoint_every = checkpoint_every
        self.docs_per_batch = docs_per_batch
        self.max_passes = max_passes
        self.model_id, self.dim = vectors.model_id, vectors.dim
        self.key = checkpoint_key(self.model_id, self.dim)
        self.progress: BuildProgress | None = None

    # -- checkpoint ----------------------------------------------------------------------------
    async def load_checkpoint(self) -> BuildCheckpoint | None:
        try:
            return BuildCheckpoint.model_validate_json(await self.blobstore.get(self.key))
        except NotFound:
            return None

    async def _save(self, cp: BuildCheckpoint) -> None:
        await self.blobstore.put(
            self.key, cp.model_dump_json().encode(), content_type="application/json"
        )

    async def _start(self) -> BuildCheckpoint:
        cp = await self.load_checkpoint()
        if cp is not None and cp.target in await self.admin.list(self.model_id, self.dim):
            if cp.kind == self.vectors.kind:
                log.info("index build resumed", target=cp.target, done=len(cp.done))
                return cp
            # a rebuild never reuses a reindex's target (or back): start over
            await self._drop_quietly(cp.target)
        target = await self.admin.create(self.model_id, self.dim)
        cp = BuildCheckpoint(
            kind=self.vectors.kind, model_id=self.model_id, dim=self.dim, target=target
        )
        await self._save(cp)
        return cp

    async def _drop_quietly(self, name: str) -> None:
        try:
            await self.admin.drop(name)
        except ValueError:  # it is serving: leave it
            log.warning("index build target is serving; not dropped", target=name)

    # -- run -----------------------------------------------------------------------------------
    async def run(
        self, *, retire_also: Sequence[Retired] = (), grace: timedelta = timedelta(hours=24)
    ) -> BuildProgress:
        """Build, promote, retire; returns the final progress. Cancelling it (task cancel,
        Ctrl-C) leaves the checkpoint for a resume and the serving index as it was."""
        cp = await self._start()
        progress = BuildProgress(kind=cp.kind, target=cp.target)
        self.progress = progress
        progress.chunks = cp.chunks
        done = set(cp.done)
        index = self.admin.open(cp.target, self.dim)
        runs: dict[tuple[str, str], SyncRun] = {}
        try:
            for n_pass in range(self.max_passes):
                todo = [d for d in await self._indexed() if _ref(d) not in done]
                if not todo:
                    break
                progress.documents_total = len(done) + len(todo)
                progress.documents_done = len(done)
                self.on_progress(progress)
                since_save = 0
                for i in range(0, len(todo), self.docs_per_batch):
                    batch = todo[i : i + self.docs_per_batch]
                    records: list[ChunkRecord] = []
                    for doc in batch:
                        try:
                            payload = await self.vectors.records(doc, progress)
                        except NotFound:
                            progress.missing.append(_ref(doc))
                            log.warning("index build: stored objects missing", doc=_ref(doc))
                            continue
                        records += payload.records(
                            doc.tenant, doc.doc_id, doc.version, utcnow(), doc.groups
                        )
                        run = runs.setdefault((doc.tenant, doc.source), self._run(doc))
                        run.counts["documents"] = run.counts.get("documents", 0) + 1
                        run.counts["chunks"] = run.counts.get("chunks", 0) + len(payload.chunks)
                    await index.upsert(records)
                    if n_pass or cp.done:  # a later pass or a resume: older versions may be in
                        for doc in batch:
                            await index.delete_document(
                                doc.tenant, doc.doc_id, keep_version=doc.version
                            )
                    for doc in batch:
                        done.add(_ref(doc))
                        cp.done.append(_ref(doc))
                    progress.chunks += len(records)
                    cp.chunks = progress.chunks
                    progress.documents_done = len(done)
                    since_save += len(batch)
                    if since_save >= self.checkpoint_every:
                        await self._save(cp)
                        since_save = 0
                    self.on_progress(progress)
                await self._save(cp)
            await self._reconcile(index, done)
            replaced = await self.admin.promote(self.model_id, self.dim, cp.target)
            drop_after = utcnow() + grace
            await self._retire(
                [Retired(name=n, model_id=self.model_id, dim=self.dim, drop_after=drop_after)
                 for n in replaced]
                + [r.model_copy(update={"drop_after": drop_after}) for r in retire_also]
            )  # fmt: skip
            await self.blobstore.delete(self.key)
            progress.state = "done"
            await self._record_runs(runs, "ok")
            log.info("index build promoted", **progress.as_dict(), replaced=replaced)
        except asyncio.CancelledError:
            progress.state = "cancelled"
            await asyncio.shield(self._save(cp))
            await asyncio.shield(self._record_runs(runs, "failed", "cancelled"))
            raise
        except Exception as exc:
            progress.state = "failed"
            await self._save(cp)
            await self._record_runs(runs, "failed", f"{type(exc).__name__}: {exc}")
            raise
        finally:
            await index.close()
            self.on_progress(progress)
        return progress

    def _run(self, doc: DocumentRecord) -> SyncRun:
        return SyncRun(
            tenant=doc.tenant,
            source=doc.source,
            run_id=f"{self.vectors.kind}-{slug(self.model_id)}-{int(time.time())}",
            type=RunType.REINDEX,
            trigger=RunTrigger.USER,
        )

    async def _record_runs(
        self, runs: dict[tuple[str, str], SyncRun], status: str, error: str | None = None
    ) -> None:
        for run in runs.values():
            run.status, run.error, run.finished_at = status, error, utcnow()
            await self.registry.record_sync_run(run)

    async def _reconcile(self, index: VectorIndex, done: set[str]) -> None:
        """Versions built that are no longer current and INDEXED (superseded, deleted) leave the
        target before it serves."""
        live = {_ref(d) for d in await self._indexed()}
        for ref in sorted(done - live):
            tenant, doc_id, version = ref.rsplit("/", 2)  # ids and versions hold no "/"
            await index.delete_document(tenant, doc_id, versions=[version])

    async def _indexed(self) -> list[DocumentRecord]:
        """Every tenant's current, searchable versions: what the new index must hold."""
        docs = await self.registry.find(status=DocumentStatus.INDEXED, limit=_DOCS_LIMIT)
        return sorted(docs, key=_ref)

    # -- cancel and retirement -----------------------------------------------------------------
    async def cancel_build(self) -> str | None:
        """Drop the unfinished target and its checkpoint; the serving index is untouched."""
        cp = await self.load_checkpoint()
        if cp is None:
            return None
        await self._drop_quietly(cp.target)
        await self.blobstore.delete(self.key)
        return cp.target

    async def _retire(self, entries: list[Retired]) -> None:
        if not entries:
            return
        current = await load_retired(self.blobstore)
        names = {r.name for r in entries}
        kept = [r for r in current if r.name not in names]
        await _save_retired(self.blobstore, kept + entries)


async def load_retired(blobstore: BlobStore) -> list[Retired]:
    try:
        raw = await blobstore.get(_RETIRED_KEY)
    except NotFound:
        return []
    return [Retired.model_validate(r) for r in orjson.loads(raw)]


async def _save_retired(blobstore: BlobStore, entries: list[Retired]) -> None:
    data = orjson.dumps([r.model_dump(mode="json") for r in entries])
    await blobstore.put(_RETIRED_KEY, data, content_type="application/json")


async def drop_retired(
    blobstore: BlobStore, admin: IndexAdmin, *, now: datetime | None = None
) -> list[str]:
    """Drop the retired indexes past their grace period; returns their names."""
    now = now or utcnow()
    entries = await load_retired(blobstore)
    dropped, kept = [], []
    for r in entries:
        if r.drop_after > now:
            kept.append(r)
            continue
        try:
            await admin.drop(r.name, force=r.model_change)
            dropped.append(r.name)
        except ValueError:  # serving again (a rollback promoted it): keep it
            log.warning("retired index is serving; kept", index=r.name)
    await _save_retired(blobstore, kept)
    return dropped


def _ref(doc: DocumentRecord) -> str:
    return f"{doc.tenant}/{doc.doc_id}/{doc.version}"
