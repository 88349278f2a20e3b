"""The adapters one process shares, the pipeline workers built on them, and the startup check."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from datatorag.bootstrap.factory import (
    make_blobstore,
    make_embedder,
    make_embedding_cache,
    make_queue,
    make_registry,
    make_vector_index,
)
from datatorag.chunking import load_chunk_tokenizer
from datatorag.config import Mode, Settings
from datatorag.domain.errors import DependencyError
from datatorag.embedding.cached import CachedEmbedder
from datatorag.embedding.model_dir import resolve_model
from datatorag.pipeline.crash_guard import CrashGuard
from datatorag.pipeline.sandbox import ParseSandbox, SandboxLimits
from datatorag.pipeline.stages import EmbedStage, IndexStage, ParseStage, StageDeps
from datatorag.pipeline.worker import ReadyProbe, Worker
from datatorag.ports import BlobStore, Embedder, EmbeddingCache, Queue, Registry, VectorIndex
from datatorag.runtime import Check, Readiness, check_all_or_exit, free_disk_check


def _naming_the_resource(check: Check) -> Check:
    """Readiness reports a ``DependencyError``'s detail under the check's name ("blobstore: does
    not exist"); keep the resource in the detail, so the operator reads which bucket or table."""

    async def run() -> None:
        try:
            await check()
        except DependencyError as exc:
            if exc.dependency in exc.detail:
                raise
            raise DependencyError(exc.dependency, str(exc)) from exc

    return run


@dataclass
class Components:
    """Adapters shared by everything running in one process; each built once, on first use."""

    settings: Settings
    _queues: dict[str, Queue] = field(default_factory=dict)
    _registry: Registry | None = None
    _blobstore: BlobStore | None = None
    _embedder: Embedder | None = None
    _index: VectorIndex | None = None
    _embedding_cache: EmbeddingCache | None = None
    readiness: Readiness = field(default_factory=Readiness)

    def __post_init__(self) -> None:
        s = self.settings
        self.readiness.debug = s.debug_errors
        # uploads spool to the temporary directory; embedded mode keeps everything in data_dir
        disks = {"temp_dir": Path(tempfile.gettempdir())}
        if s.mode is Mode.EMBEDDED:
            disks = {"data_dir": s.data_dir, **disks}
        self.readiness.add("disk", free_disk_check(disks, s.min_free_disk_mb * 1024 * 1024))

    def queue(self, logical: str) -> Queue:
        if logical not in self._queues:
            q = make_queue(self.settings, logical)
            self._queues[logical] = q
            self.readiness.add(f"queue:{q.name}", _naming_the_resource(q.check))
        return self._queues[logical]

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = make_registry(self.settings)
            self.readiness.add("registry", _naming_the_resource(self._registry.check))
        return self._registry

    @property
    def blobstore(self) -> BlobStore:
        if self._blobstore is None:
            self._blobstore = make_blobstore(self.settings)
            self.readiness.add("blobstore", _naming_the_resource(self._blobstore.check))
        return self._blobstore

    async def embedder(self, *, in_process: bool | None = None) -> Embedder:
        if self._embedder is None:
            self._embedder = await make_embedder(self.settings, in_process=in_process)
            self.readiness.add("embedder", _naming_the_resource(self._embedder.check))
        return self._embedder

    @property
    def embedding_cache(self) -> EmbeddingCache:
        if self._embedding_cache is None:
            self._embedding_cache = make_embedding_cache(self.settings)
            self.readiness.add("embedding_cache", _naming_the_resource(self._embedding_cache.check))
        return self._embedding_cache

    async def document_embedder(self) -> Embedder:
        """The in-process model behind the embedding cache (when enabled): what the embed stage
        and a reindex use."""
        emb = await self.embedder(in_process=True)
        if not self.settings.embedding.cache:
            return emb
        return CachedEmbedder(emb, self.embedding_cache)

    async def index(self) -> VectorIndex:
        """The index follows the model: its id and dimension come from the embedder."""
        if self._index is None:
            emb = await self.embedder()
            self._index = make_vector_index(self.settings, model_id=emb.model_id, dim=emb.dim)
            await self._index.ensure()
            self.readiness.add("vector_index", _naming_the_resource(self._index.check))
        return self._index

    def stage_deps(self) -> StageDeps:
        return StageDeps(self.settings, self.registry, self.blobstore)

    async def close(self) -> None:
        for closable in [
            *self._queues.values(),
            self._registry,
            self._blobstore,
            self._index,
            self._embedder,
            self._embedding_cache,
        ]:
            if closable is not None:
                await closable.close()


def readiness_probe(readiness: Readiness) -> ReadyProbe:
    """Raises while any dependency of the service is not ready: a worker that failed in a
    retryable way takes no new message until this passes (see ``Worker``)."""

    async def probe() -> None:
        results = await readiness.run()
        bad = {name: why for name, why in results.items() if why != "ok"}
        if bad:
            raise DependencyError("dependencies", "; ".join(f"{k}: {v}" for k, v in bad.items()))

    return probe


def _crash_guard(c: Components, service: str) -> CrashGuard:
    return CrashGuard(c.registry, service, max_crashes=c.settings.limits.max_crashes)


def _wait(settings: Settings) -> float:
    # Embedded queues are local: poll briefly so shutdown stays snappy.
    return 1.0 if settings.mode is Mode.EMBEDDED else float(settings.queues.wait_time_s)


async def parser_worker(c: Components) -> Worker:
    s = c.settings
    spec = resolve_model(s.embedding.model)
    emb_max = min(s.embedding.max_seq_tokens, spec.max_seq_length or s.embedding.max_seq_tokens)
    load_chunk_tokenizer(s.embedding.model)  # fail fast here: no tokenizer.json, no parser
    lim = s.limits
    sandbox = ParseSandbox(
        s.embedding.model,
        SandboxLimits(
            workers=lim.parse_workers,
            memory_mb=lim.parse_memory_mb,
            cpu_s=lim.parse_cpu_s,
            wall_s=lim.parse_wall_s,
        ),
    )
    stage = ParseStage(
        c.stage_deps(),
        out=c.queue("embed"),
        index_queue=c.queue("index"),
        sandbox=sandbox,
        # a chunk must fit the model's window, or its tail would be silently truncated
        max_tokens=min(s.chunking.max_tokens, emb_max),
    )
    return Worker(
        c.queue("parse"),
        stage,
        batch_size=1,
        # twice as many documents in hand as sandbox slots: a freed slot can go to another
        # tenant's document instead of the next in line (FairSlots)
        loops=2 * lim.parse_workers,
        wait_s=_wait(s),
        ready_probe=readiness_probe(c.readiness),
        crash_guard=_crash_guard(c, stage.service),
    )


async def embedder_worker(c: Components) -> Worker:
    stage = EmbedStage(c.stage_deps(), await c.document_embedder(), out=c.queue("index"))
    # Up to 10 documents per receive, gathered briefly: one length-sorted encode across them.
    return Worker(
        c.queue("embed"),
        stage,
        batch_size=10,
        wait_s=_wait(c.settings),
        gather_s=0.2,
        ready_probe=readiness_probe(c.readiness),
        crash_guard=_crash_guard(c, stage.service),
    )


async def indexer_worker(c: Components) -> Worker:
    stage = IndexStage(c.stage_deps(), await c.index())
    return Worker(
        c.queue("index"),
        stage,
        batch_size=10,
        wait_s=_wait(c.settings),
        ready_probe=readiness_probe(c.readiness),
        crash_guard=_crash_guard(c, stage.service),
    )


# The first dependency check also creates the clients (botocore loads its service models): on a
# busy node that alone outlasts the readiness probe's timeout, so startup allows longer.
STARTUP_CHECK_TIMEOUT_S = 30.0


async def startup_check(c: Components, service: str) -> None:
    """Fail fast, naming every missing dependency; a slow but present one is not missing."""
    readiness = c.readiness
    probe_timeout = readiness.timeout_s
    readiness.timeout_s = max(probe_timeout, STARTUP_CHECK_TIMEOUT_S)
    try:
        await check_all_or_exit(readiness, service)
    except SystemExit:
        await c.close()
        raise
    finally:
        readiness.timeout_s = probe_timeout
