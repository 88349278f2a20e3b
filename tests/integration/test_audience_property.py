"""Document audiences, property-based (hypothesis): over random corpora, tenants, groups,
principals and queries, against the in-memory index, LanceDB and the real OpenSearch node, no hit
(k-NN, BM25, hybrid), context, answer citation or quote, document detail or listing ever shows a
document outside the principal's tenant and groups; and ``k`` hits come back whenever ``k``
visible chunks exist (the audience is filtered inside the index query, not after it).

Everything goes through ``QueryService`` (what REST and gRPC both call), with the extractive
answerer and the answer cache on, so an answer cached for one audience must not reach another.
Vectors come from the hashing embedder (deterministic, no model). Each example writes fresh
tenants into one index per adapter, as tenants share an index in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datatorag.adapters.embedded.lancedb_index import LanceDbIndex
from datatorag.adapters.opensearch import OpenSearchIndex
from datatorag.answering import AnswerQuery
from datatorag.config import OpenSearchSettings, Settings
from datatorag.domain.audience import visible
from datatorag.domain.models import ChunkRecord, DocumentRecord, DocumentStatus
from datatorag.domain.principal import EVERYONE, Principal
from datatorag.gateway import GatewayDeps
from datatorag.gateway.errors import ApiError
from datatorag.gateway.schemas import QueryRequest, SearchRequest
from datatorag.gateway.service import QueryService
from datatorag.ports import VectorIndex
from datatorag.testing.memory.embedder import HashingEmbedder
from datatorag.testing.memory.registry import MemoryRegistry
from datatorag.testing.memory.vector_index import MemoryVectorIndex

pytestmark = pytest.mark.timeout(900)

DIM = 64
GROUPS = ["hr", "managers", "exec", "finance"]
WORDS = ["leave", "salary", "bonus", "policy", "travel", "expense", "review", "layoff", "benefit"]

group_sets = st.sets(st.sampled_from(GROUPS), min_size=1, max_size=3).map(
    lambda s: tuple(sorted(s))
)
doc_groups = st.one_of(st.just((EVERYONE,)), group_sets)
texts = st.lists(st.sampled_from(WORDS), min_size=2, max_size=6).map(" ".join)


@dataclass(frozen=True)
class Doc:
    tenant: int  # 0 or 1
    groups: tuple[str, ...]
    chunks: tuple[str, ...]


@dataclass(frozen=True)
class Reader:
    tenant: int
    groups: frozenset[str]
    admin: bool


docs = st.builds(
    Doc,
    tenant=st.integers(0, 1),
    groups=doc_groups,
    chunks=st.lists(texts, min_size=1, max_size=2).map(tuple),
)
readers = st.builds(
    Reader,
    tenant=st.integers(0, 1),
    groups=st.frozensets(st.sampled_from(GROUPS), max_size=2),
    admin=st.booleans(),
)


@pytest.fixture(params=["memory", "lancedb", "opensearch"])
def make_index(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], VectorIndex]:
    """A factory (the index is built inside the test's own event loop)."""
    if request.param == "memory":
        return lambda: MemoryVectorIndex(DIM)
    if request.param == "lancedb":
        return lambda: LanceDbIndex(tmp_path / "lancedb", dim=DIM, table="chunks_prop")
    server = request.getfixturevalue("opensearch_server")
    prefix = server.unique_prefix("aud")
    cfg = OpenSearchSettings(url=server.url, engine=server.engine, index_prefix=prefix)

    def drop() -> None:  # this test's indices and template only
        for path in (f"/{prefix}-*", f"/_index_template/{prefix}-*"):
            with contextlib.suppress(OSError):
                req = urllib.request.Request(f"{server.url}{path}", method="DELETE")
                urllib.request.urlopen(req, timeout=10).close()

    request.addfinalizer(drop)  # noqa: PT021 - the fixture returns a factory, it cannot yield
    return lambda: OpenSearchIndex(cfg, model_id="audience-prop", dim=DIM, replicas=0)


async def _ingest(
    index: VectorIndex, registry: MemoryRegistry, embedder: HashingEmbedder, tenants: list[str],
    corpus: list[Doc],
) -> None:  # fmt: skip
    records: list[ChunkRecord] = []
    for i, doc in enumerate(corpus):
        tenant, doc_id = tenants[doc.tenant], f"doc-{i}"
        await registry.put_version(
            DocumentRecord(
                tenant=tenant, doc_id=doc_id, version="v1", seq=1, source="src",
                path=f"{doc_id}.txt", content_hash="x", title=f"title {i}", groups=doc.groups,
            )
        )  # fmt: skip
        await registry.advance(tenant, doc_id, "v1", DocumentStatus.INDEXED, chunk_count=1)
        for n, text in enumerate(doc.chunks):
            records.append(
                ChunkRecord(
                    id=ChunkRecord.make_id(doc_id, "v1", n), tenant=tenant, doc_id=doc_id,
                    version="v1", chunk_index=n, text=text, title=f"title {i}", source="src",
                    path=f"{doc_id}.txt", groups=doc.groups,
                    vector=embedder.vector(text).tolist(),
                )
            )  # fmt: skip
    await index.upsert(records)


async def _check(
    service: QueryService, tenants: list[str], corpus: list[Doc], reader: Reader, query: str,
    k: int,
) -> None:  # fmt: skip
    tenant = tenants[reader.tenant]
    principal = Principal(
        tenant, "prop", groups=reader.groups, role="admin" if reader.admin else "reader"
    )
    audience = principal.audience()
    shown = {
        f"doc-{i}"
        for i, d in enumerate(corpus)
        if d.tenant == reader.tenant and visible(d.groups, audience)
    }
    texts_of = {f"doc-{i}": d.chunks for i, d in enumerate(corpus)}
    visible_chunks = sum(len(texts_of[d]) for d in shown)
    why = f"{principal} sees {sorted(shown)}"

    for mode in ("hybrid", "knn", "bm25"):
        found = await service.search(principal, SearchRequest(query=query, k=k, mode=mode))
        ids = {h.citation.doc_id for h in found.hits}
        assert ids <= shown, f"{mode}: {sorted(ids - shown)} leaked; {why}"
        if mode != "bm25":  # every visible chunk is a k-NN candidate: k of them come back
            assert len(found.hits) == min(k, visible_chunks), f"{mode}: {why}"
    ctx = await service.query(principal, QueryRequest(query=query, k=k))
    assert {c.doc_id for c in ctx.citations} <= shown, why

    answer = await service.answers.answer(principal, AnswerQuery(query=query, k=min(k, 20)))
    for c in answer.citations:
        assert c.doc_id in shown, f"answer cited {c.doc_id}; {why}"
        if c.quote:
            assert any(c.quote in t for t in texts_of[c.doc_id]), c.quote

    listed = await service.documents(principal, None, None, 1000)
    assert {d.doc_id for d in listed.documents} == shown, why
    for i, d in enumerate(corpus):
        doc_id = f"doc-{i}"
        if doc_id in shown:
            detail = await service.document(principal, doc_id)
            assert detail.document.groups == list(d.groups)
            assert {c.id.split(":")[0] for c in detail.chunks} == {doc_id}
            assert len(detail.chunks) == len(d.chunks)
        else:  # another tenant's, or outside the audience: as if it did not exist
            with pytest.raises(ApiError) as err:
                await service.document(principal, doc_id)
            assert err.value.status == 404


@contextlib.asynccontextmanager
async def _service(index: VectorIndex) -> AsyncIterator[tuple[QueryService, MemoryRegistry]]:
    registry = MemoryRegistry()
    embedder = HashingEmbedder(DIM)
    service = QueryService(GatewayDeps(Settings(), index, embedder, registry))
    try:
        yield service, registry
    finally:
        await service.aclose()


def test_no_principal_ever_sees_a_document_outside_its_tenant_and_groups(
    make_index: Callable[[], VectorIndex],
) -> None:
    loop = asyncio.new_event_loop()
    index = make_index()
    loop.run_until_complete(index.ensure())
    embedder = HashingEmbedder(DIM)
    examples = 0

    @settings(
        max_examples=int(os.environ.get("AUDIENCE_EXAMPLES", "25")),
        deadline=None,
        derandomize=True,  # the same examples on every run: a failure reproduces
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(
        corpus=st.lists(docs, min_size=1, max_size=10),
        principals=st.lists(readers, min_size=1, max_size=4),
        query=st.lists(st.sampled_from(WORDS), min_size=1, max_size=3).map(" ".join),
        k=st.integers(1, 8),
    )
    def run(corpus: list[Doc], principals: list[Reader], query: str, k: int) -> None:
        nonlocal examples
        examples += 1
        tenants = [f"p-{uuid.uuid4().hex[:8]}-{n}" for n in range(2)]

        async def go() -> None:
            async with _service(index) as (service, registry):
                await _ingest(index, registry, embedder, tenants, corpus)
                for reader in principals:  # one question, several audiences: the cache is hit
                    await _check(service, tenants, corpus, reader, query, k)

        loop.run_until_complete(go())

    try:
        run()
    finally:
        loop.run_until_complete(index.close())
        loop.close()
    assert examples >= 1
