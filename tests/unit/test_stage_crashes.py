"""The pipeline stages over the in-memory fakes (``datatorag.testing.memory``).

* A crash between any two durable steps of a stage (blob write, queue send, registry advance,
  ack), then redelivery of the message as at-least-once delivery does, still has exactly-once
  effect: the document ends INDEXED with the right chunk count, the index holds exactly the
  chunks of the final version, and no message is lost.
* A newer version landing while an older one is mid-index: the older one never overwrites or
  removes the newer one's chunks, and the final state serves only the newest version.
* ``QueryService`` over the fakes answers from the asking tenant's chunks only.

A crash is the ``Crash`` exception raised from a wrapped fake method, once, before the call takes
effect or right after it did. ``Crash`` is a ``BaseException``, so no stage code can catch and
settle it: the "process" dies with the message unacknowledged, and the queue's (manual) clock is
moved past the visibility timeout so the message is delivered again.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from datatorag.chunking import load_chunk_tokenizer
from datatorag.config import Settings
from datatorag.domain.contracts import DocumentAudience, DocumentFetched, parse_message
from datatorag.domain.keys import content_hash, doc_id_for, raw_key, version_of
from datatorag.domain.models import DocumentRecord, DocumentStatus
from datatorag.domain.principal import Principal
from datatorag.gateway.deps import GatewayDeps
from datatorag.gateway.schemas import SearchRequest
from datatorag.gateway.service import QueryService
from datatorag.pipeline.sandbox import ParseJob, ParseResult, parse_and_chunk
from datatorag.pipeline.stages import EmbedStage, IndexStage, ParseStage, StageDeps
from datatorag.pipeline.worker import BatchHandler, Delivery
from datatorag.retrieval.hybrid import Mode
from datatorag.testing.memory import (
    HashingEmbedder,
    ManualClock,
    MemoryBlobStore,
    MemoryQueue,
    MemoryRegistry,
    MemoryVectorIndex,
)

pytestmark = pytest.mark.timeout(120)

TENANT = "acme"
SOURCE = "handbook"
PATH = "/policies/leave.md"
DIM = 64
VISIBILITY_S = 30
MAX_TOKENS = 48  # small chunks: a few paragraphs make several of them

V1_TEXT = "# Leave policy\n\n" + " ".join(
    f"Employees accrue {n} vacation days after {n} years of walrus service." for n in range(12)
)
V2_TEXT = (
    "# Leave policy\n\n"
    + " ".join(f"Staff earn {n} vacation days per pelican season {n}." for n in range(18))
    + "\n\n## Expenses\n\n"
    + " ".join(f"Receipt {n} is filed within thirty days." for n in range(10))
)
V1_ONLY, V2_ONLY = "walrus", "pelican"


class Crash(BaseException):
    """The process dies here: not an ``Exception``, so no handler catches and settles it."""


@functools.cache
def _tokenizer() -> Any:
    return load_chunk_tokenizer()  # the embedding model's (MiniLM ships with the venv)


class InProcessParser:
    """Stands in for ``ParseSandbox``: the same parse-and-chunk a sandbox worker runs, with the
    real tokenizer, but in this process (no worker processes to start for a unit test)."""

    async def parse(self, tenant: str, job: ParseJob) -> ParseResult:
        return parse_and_chunk(job, _tokenizer())

    async def close(self) -> None:
        pass


@dataclass
class Doc:
    tenant: str
    doc_id: str
    version: str
    seq: int


@dataclass
class Pipeline:
    """Three stages wired to in-memory queues, as ``bootstrap.components`` wires the real ones."""

    clock: ManualClock = field(default_factory=ManualClock)
    registry: MemoryRegistry = field(default_factory=MemoryRegistry)
    blobs: MemoryBlobStore = field(default_factory=MemoryBlobStore)
    index: MemoryVectorIndex = field(default_factory=lambda: MemoryVectorIndex(DIM))
    embedder: HashingEmbedder = field(default_factory=lambda: HashingEmbedder(DIM))
    queues: dict[str, MemoryQueue] = field(init=False)
    stages: dict[str, BatchHandler] = field(init=False)
    crashes: int = 0

    def __post_init__(self) -> None:
        self.queues = {
            name: MemoryQueue(name, visibility_timeout_s=VISIBILITY_S, clock=self.clock)
            for name in ("parse", "embed", "index")
        }
        deps = StageDeps(Settings(), self.registry, self.blobs)
        self.stages = {
            "parse": ParseStage(
                deps, self.queues["embed"], self.queues["index"], InProcessParser(), MAX_TOKENS
            ),
            "embed": EmbedStage(deps, self.embedder, self.queues["index"]),
            "index": IndexStage(deps, self.index),
        }

    async def ingest(self, text: str, *, seq: int, tenant: str = TENANT) -> Doc:
        """What a connector does: raw blob, registry version, then the parse message."""
        data = text.encode()
        sha = content_hash(data)
        doc = Doc(tenant, doc_id_for(SOURCE, PATH), version_of(sha), seq)
        key = raw_key(tenant, SOURCE, doc.doc_id, sha)
        await self.blobs.put(key, data)
        common = {"tenant": tenant, "doc_id": doc.doc_id, "version": doc.version, "seq": seq}
        place = {"source": SOURCE, "path": PATH, "content_hash": sha}
        await self.registry.put_version(
            DocumentRecord(**common, **place, blob_key=key, size=len(data))
        )
        msg = DocumentFetched(**common, **place, blob_key=key, size=len(data))
        await self.queues["parse"].send(msg.to_json())
        return doc

    async def step(self, stage: str) -> int:
        """One receive of a worker of ``stage``: handle the batch, ack what succeeded. A
        ``Crash`` ends it there (nothing after the crash point runs, nothing is acked)."""
        queue = self.queues[stage]
        raw = await queue.receive(10)
        if not raw:
            return 0
        deliveries = [Delivery(m, parse_message(m.body)) for m in raw]
        results = await self.stages[stage].handle_batch(deliveries)
        for result in results:
            if isinstance(result, Crash):
                raise result
            if result is not None:
                raise AssertionError(f"{stage} failed: {result!r}") from result
        for d in deliveries:
            await queue.ack(d.raw)
        return len(deliveries)

    async def drain(self, max_rounds: int = 50) -> None:
        """Run the stages until a whole round finds nothing visible. After a crash the dead
        worker's message comes back once its visibility timeout has passed."""
        for _ in range(max_rounds):
            handled = 0
            for stage in self.stages:
                try:
                    while n := await self.step(stage):
                        handled += n
                except Crash:
                    self.crashes += 1
                    self.clock.advance(VISIBILITY_S + 1)
                    handled += 1
            if not handled:
                return
        raise AssertionError(f"the pipeline did not settle in {max_rounds} rounds")

    async def assert_settled(self) -> None:
        """No message left behind anywhere (none lost in flight, none dead-lettered)."""
        for name, queue in self.queues.items():
            assert await queue.depth() == 0, f"{name} queue still holds messages"
            assert await queue.dlq_depth() == 0, f"{name} queue dead-lettered a message"


async def _indexed_as_by_a_clean_run(text: str, *, seq: int) -> list[tuple[str, str]]:
    """(chunk id, text) of ``text`` as a pipeline without crashes indexes it."""
    clean = Pipeline()
    doc = await clean.ingest(text, seq=seq)
    await clean.drain()
    return [(c.id, c.text) for c in await clean.index.get_chunks(doc.tenant, doc.doc_id)]


def _hook(
    obj: object,
    method: str,
    action: Callable[[], Awaitable[None]],
    *,
    when: str,
    match: Callable[..., bool] = lambda *a, **kw: True,
) -> list[str]:
    """Wrap ``obj.method`` so that its first matching call runs ``action`` ``before`` the call
    takes effect or ``after`` it did. Returns a list that records the firing."""
    original = getattr(obj, method)
    fired: list[str] = []

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        if fired or not match(*args, **kwargs):
            return await original(*args, **kwargs)
        fired.append(f"{method} ({when})")
        if when == "before":
            await action()
            return await original(*args, **kwargs)
        result = await original(*args, **kwargs)
        await action()
        return result

    setattr(obj, method, wrapper)  # on the instance: every caller goes through it
    return fired


async def _crash() -> None:
    raise Crash


# -- exactly-once under crashes --------------------------------------------------------------

# (stage, what the crash hits): every durable step of every stage, in the order the stage takes
# them (``pipeline.stages``: output blob, next message, registry advance, then the ack).
CRASH_POINTS = {
    "parse": ["blob put", "queue send", "registry advance", "ack"],
    "embed": ["blob put", "queue send", "registry advance", "ack"],
    "index": ["index upsert", "index delete", "registry advance", "ack"],
}
NEXT_QUEUE = {"parse": "embed", "embed": "index"}
BLOB_PREFIX = {"parse": "chunks/", "embed": "embedded/"}
STATUS = {"parse": DocumentStatus.PARSED, "embed": DocumentStatus.EMBEDDED}


def _arm_crash(p: Pipeline, stage: str, point: str, when: str, version: str) -> list[str]:
    if point == "blob put":
        return _hook(
            p.blobs,
            "put",
            _crash,
            when=when,
            match=lambda key, *a, **kw: key.startswith(BLOB_PREFIX[stage]),
        )
    if point == "queue send":
        return _hook(p.queues[NEXT_QUEUE[stage]], "send", _crash, when=when)
    if point == "registry advance":
        status = STATUS.get(stage, DocumentStatus.INDEXED)
        return _hook(
            p.registry,
            "advance",
            _crash,
            when=when,
            match=lambda tenant, doc_id, v, s, **kw: v == version and s is status,
        )
    if point == "ack":
        return _hook(p.queues[stage], "ack", _crash, when=when)
    if point == "index upsert":
        return _hook(p.index, "upsert", _crash, when=when)
    assert point == "index delete"
    return _hook(p.index, "delete_document", _crash, when=when)


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize(
    ("stage", "point"),
    [(stage, point) for stage, points in CRASH_POINTS.items() for point in points],
)
async def test_a_crash_between_durable_steps_has_exactly_once_effect(
    stage: str, point: str, when: str
) -> None:
    p = Pipeline()
    # v1 is indexed already, so the index stage has stale chunks to drop for v2.
    v1 = await p.ingest(V1_TEXT, seq=1)
    await p.drain()
    v2 = Doc(TENANT, v1.doc_id, version_of(content_hash(V2_TEXT.encode())), 2)
    fired = _arm_crash(p, stage, point, when, v2.version)

    await p.ingest(V2_TEXT, seq=2)
    await p.drain()

    assert fired and p.crashes == 1, "the crash point was never reached"
    expected = await _indexed_as_by_a_clean_run(V2_TEXT, seq=2)
    current = await p.registry.current(TENANT, v2.doc_id)
    assert current is not None
    assert (current.version, current.status) == (v2.version, DocumentStatus.INDEXED)
    assert current.chunk_count == len(expected) > 1
    chunks = await p.index.get_chunks(TENANT, v2.doc_id)
    assert [(c.id, c.text) for c in chunks] == expected  # exactly v2's: none twice, none missing
    assert {c.version for c in chunks} == {v2.version}
    assert await p.index.count(TENANT) == len(expected)  # nothing of v1 left over
    await p.assert_settled()


# -- a newer version while an older one is mid-index -----------------------------------------


async def _both_versions(p: Pipeline) -> tuple[Doc, Doc]:
    """v1 parsed and embedded, its ChunksEmbedded waiting on the index queue."""
    v1 = await p.ingest(V1_TEXT, seq=1)
    await p.step("parse")
    await p.step("embed")
    v2 = Doc(TENANT, v1.doc_id, version_of(content_hash(V2_TEXT.encode())), 2)
    return v1, v2


async def _assert_serves_only_v2(p: Pipeline, v2: Doc) -> None:
    expected = await _indexed_as_by_a_clean_run(V2_TEXT, seq=2)
    current = await p.registry.current(TENANT, v2.doc_id)
    assert current is not None
    assert (current.version, current.status) == (v2.version, DocumentStatus.INDEXED)
    assert current.chunk_count == len(expected)
    chunks = await p.index.get_chunks(TENANT, v2.doc_id)
    assert [(c.id, c.text) for c in chunks] == expected
    assert await p.index.bm25(TENANT, V1_ONLY, 10) == []
    hits = await p.index.bm25(TENANT, V2_ONLY, 50)
    assert hits and {h.chunk.version for h in hits} == {v2.version}
    await p.assert_settled()


# Where v1's index handling is when v2 lands: (method of v1's IndexStage call, before/after it).
MID_INDEX = {
    "before v1's upsert": ("upsert", "before"),
    "after v1's upsert": ("upsert", "after"),
    "before v1's stale-chunk delete": ("delete_document", "before"),
    "before v1 is marked INDEXED": ("advance", "before"),
}


def _is_v1(v1: Doc, method: str) -> Callable[..., bool]:
    if method == "upsert":
        return lambda records, *a, **kw: all(r.version == v1.version for r in records)
    if method == "delete_document":
        # v1's own clean-up: the versions it knows to be older (v2's would name v1)
        return lambda tenant, doc_id, *, keep_version=None, versions=None: (
            versions is not None and v1.version not in versions
        )
    return lambda tenant, doc_id, version, status, **kw: (
        version == v1.version and status is DocumentStatus.INDEXED
    )


@pytest.mark.parametrize(
    ("moment", "landed"),
    [(moment, landed) for moment in MID_INDEX for landed in ("registered", "fully indexed")],
)
async def test_a_newer_version_landing_mid_index_is_never_clobbered(
    moment: str, landed: str
) -> None:
    p = Pipeline()
    v1, v2 = await _both_versions(p)

    async def v2_lands() -> None:
        await p.ingest(V2_TEXT, seq=2)
        if landed == "fully indexed":
            await p.drain()  # v1's message is in flight (invisible): only v2's are handled

    method, when = MID_INDEX[moment]
    target = p.registry if method == "advance" else p.index
    fired = _hook(target, method, v2_lands, when=when, match=_is_v1(v1, method))

    await p.drain()

    assert fired, "v1 never reached that step"
    await _assert_serves_only_v2(p, v2)
    # the older version is not current whatever it reached; nothing of it is searchable
    record = await p.registry.get(TENANT, v1.doc_id, v1.version)
    assert record is not None and record.status in (DocumentStatus.DELETED, DocumentStatus.INDEXED)
    assert all(c.version == v2.version for c in await p.index.get_chunks(TENANT, v1.doc_id))


async def test_a_late_message_of_an_older_version_changes_nothing() -> None:
    p = Pipeline()
    v1, v2 = await _both_versions(p)  # v1's ChunksEmbedded is still waiting to be indexed
    late = await p.queues["index"].receive(1)  # a slow indexer holds it...
    await p.ingest(V2_TEXT, seq=2)
    await p.drain()  # ...while v2 goes all the way
    p.clock.advance(VISIBILITY_S + 1)  # then its holder dies: v1's message is redelivered
    await p.drain()

    assert len(late) == 1
    await _assert_serves_only_v2(p, v2)
    record = await p.registry.get(TENANT, v1.doc_id, v1.version)
    assert record is not None and record.status is DocumentStatus.DELETED
    assert record.reason == f"superseded by version {v2.version}"


# -- the query service over the fakes --------------------------------------------------------


@pytest.mark.parametrize("mode", [Mode.HYBRID, Mode.KNN, Mode.BM25])
async def test_query_service_returns_only_the_tenants_chunks(mode: Mode) -> None:
    p = Pipeline()
    # Same source and path, so the same doc_id in both tenants; both speak of vacation days.
    await p.ingest(V1_TEXT, seq=1, tenant="acme")
    await p.ingest(V2_TEXT, seq=1, tenant="globex")
    await p.drain()
    texts = {
        tenant: {c.text for c in await p.index.get_chunks(tenant, doc_id_for(SOURCE, PATH))}
        for tenant in ("acme", "globex")
    }
    assert texts["acme"] and texts["globex"] and not texts["acme"] & texts["globex"]
    service = QueryService(
        GatewayDeps(settings=Settings(), index=p.index, embedder=p.embedder, registry=p.registry)
    )

    for tenant, other in (("acme", "globex"), ("globex", "acme")):
        response = await service.search(
            Principal(tenant, "test"), SearchRequest(query="vacation days", k=50, mode=mode)
        )
        assert response.hits, f"{tenant} found nothing"
        assert {h.text for h in response.hits} <= texts[tenant]
        assert not {h.text for h in response.hits} & texts[other]
    # and a word only the other tenant's document holds finds nothing of it
    acme = Principal("acme", "test")
    response = await service.search(acme, SearchRequest(query=V2_ONLY, k=10, mode=Mode.BM25))
    assert response.hits == []


# -- a delete racing the indexer -------------------------------------------------------------


@pytest.mark.parametrize("when", ["before", "after"])
async def test_a_delete_while_the_indexer_writes_leaves_nothing_searchable(when: str) -> None:
    """DELETE /v1/documents/{id} lands while the indexer upserts the document's chunks: whether
    the delete's index removal runs before or after the upsert, no chunk stays."""
    from datatorag.lifecycle.deletion import delete_document

    p = Pipeline()
    doc = await p.ingest("Parental leave is sixteen weeks. " * 20, seq=1)
    for stage in ("parse", "embed"):
        while await p.step(stage):
            pass

    async def delete_now() -> None:
        result = await delete_document(p.registry, p.index, p.blobs, doc.tenant, doc.doc_id, by="t")
        assert result is not None

    fired = _hook(p.index, "upsert", delete_now, when=when)
    while await p.step("index"):
        pass
    assert fired
    assert await p.index.get_chunks(doc.tenant, doc.doc_id) == []
    record = await p.registry.current(doc.tenant, doc.doc_id)
    assert record is not None and record.status is DocumentStatus.DELETED
    await p.assert_settled()


# -- an audience change racing the indexer ---------------------------------------------------


@pytest.mark.parametrize("when", ["before", "after"])
async def test_an_audience_change_while_the_indexer_writes_ends_in_the_index(when: str) -> None:
    """The connector's DocumentAudience is handled (registry, then index) while the indexer
    upserts the version with the groups it read before: either way the index ends with the new
    groups, and a reader outside them finds nothing."""
    p = Pipeline()
    doc = await p.ingest("Parental leave is sixteen weeks. " * 20, seq=1)
    for stage in ("parse", "embed"):
        while await p.step(stage):
            pass
    change = DocumentAudience(
        tenant=doc.tenant, doc_id=doc.doc_id, source=SOURCE, path=PATH, groups=("hr",)
    )

    async def change_now() -> None:  # another indexer replica handling the connector's message
        await p.stages["index"].handle_batch(
            [Delivery(None, change)]  # type: ignore[arg-type]
        )

    fired = _hook(p.index, "upsert", change_now, when=when)
    while await p.step("index"):
        pass
    assert fired
    chunks = await p.index.get_chunks(doc.tenant, doc.doc_id)
    assert chunks and {c.groups for c in chunks} == {("hr",)}
    record = await p.registry.current(doc.tenant, doc.doc_id)
    assert record is not None and record.groups == ("hr",)
    assert record.status is DocumentStatus.INDEXED
    staff = await p.index.bm25(doc.tenant, "parental leave", 10, audience=frozenset({"everyone"}))
    assert staff == []
    hr = await p.index.bm25(doc.tenant, "parental leave", 10, audience=frozenset({"hr"}))
    assert len(hr) == len(chunks)
    await p.assert_settled()
