"""OpenSearchIndex on a real node.

Mapping, alias, template, efficient filtering, blue/green, checks.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import pytest

from datatorag.adapters.opensearch import OpenSearchIndex
from datatorag.adapters.opensearch import mapping as m
from datatorag.config import OpenSearchSettings
from datatorag.domain.errors import DependencyError, TransientError
from datatorag.domain.models import ChunkRecord, SearchFilters

# generous: the first test also pays for starting the session's node (install included, once)
pytestmark = [pytest.mark.opensearch, pytest.mark.timeout(600)]

MakeIndex = Callable[..., OpenSearchIndex]


@pytest.fixture
async def make_index(opensearch_server) -> AsyncIterator[MakeIndex]:
    """Adapters on fresh prefixes (or a shared one, to test races); all dropped at the end."""
    made: list[OpenSearchIndex] = []

    def make(
        *, model_id: str = "all-MiniLM-L6-v2", dim: int = 384, prefix: str | None = None, **kw: Any
    ) -> OpenSearchIndex:
        settings = OpenSearchSettings(
            url=opensearch_server.url,
            engine=opensearch_server.engine,
            index_prefix=prefix or opensearch_server.unique_prefix("it"),
        )
        kw.setdefault("replicas", 0)
        index = OpenSearchIndex(settings, model_id=model_id, dim=dim, **kw)
        made.append(index)
        return index

    yield make
    for index in made:
        try:
            await index.drop()
        finally:
            await index.close()


def _unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    rows = rng.normal(size=(n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _records(tenant: str, vectors: np.ndarray, prefix: str = "d", **kw: Any) -> list[ChunkRecord]:
    return [
        ChunkRecord(
            id=ChunkRecord.make_id(f"{prefix}{i}", "v1", 0),
            tenant=tenant,
            doc_id=f"{prefix}{i}",
            version="v1",
            chunk_index=0,
            text=f"chunk {i}",
            source=kw.get("source", "ftp"),
            path=f"/in/{prefix}{i}.pdf",
            vector=v.tolist(),
        )
        for i, v in enumerate(vectors)
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- names, template, mapping, alias ------------------------------------------------------------
def test_names_carry_model_and_dimension() -> None:
    assert (
        m.alias_name("datatorag-chunks", "all-MiniLM-L6-v2") == "datatorag-chunks-all-minilm-l6-v2"
    )
    assert (
        m.index_name("datatorag-chunks", "sentence-transformers/all-MiniLM-L6-v2", 384)
        == "datatorag-chunks-all-minilm-l6-v2-384-v1"
    )
    assert m.index_name("datatorag-chunks", "google/embeddinggemma-300m", 768, 3) == (
        "datatorag-chunks-embeddinggemma-300m-768-v3"
    )
    with pytest.raises(ValueError):
        m.alias_name("Bad Prefix", "x")
    with pytest.raises(ValueError):
        m.index_name("datatorag-chunks", "x", 0)


async def test_ensure_creates_index_through_template_with_the_specified_mapping(
    make_index: MakeIndex,
) -> None:
    index = make_index()
    await index.ensure()
    client = index.client
    behind = await client.indices.get_alias(name=index.alias)
    assert index.alias.endswith("-all-minilm-l6-v2")
    assert list(behind) == [f"{index.alias}-384-v1"]

    templates = await client.indices.get_index_template(name=index.template_name)
    [template] = templates["index_templates"]
    assert template["index_template"]["index_patterns"] == [f"{index.alias}-384-v*"]

    name = next(iter(behind))
    mappings = (await client.indices.get_mapping(index=name))[name]["mappings"]
    props = mappings["properties"]
    assert mappings["dynamic"] == "strict"
    assert props["vector"] == {
        "type": "knn_vector",
        "dimension": 384,
        "method": {
            "engine": "lucene",
            "space_type": "cosinesimil",
            "name": "hnsw",
            "parameters": {"ef_construction": 128, "m": 16},
        },
    }
    for field in ("tenant", "source", "doc_id", "version", "doc_type"):
        assert props[field]["type"] == "keyword", field
    for field in ("title", "section", "text"):
        assert props[field]["type"] == "text", field
        assert props[field]["analyzer"] == "english", field
    for field in ("chunk_index", "page_start", "page_end"):
        assert props[field]["type"] == "integer", field
    assert props["updated_at"]["type"] == "date"
    settings = (await client.indices.get_settings(index=name))[name]["settings"]["index"]
    assert settings["knn"] == "true"


@pytest.mark.parametrize(("analyzer", "found"), [("english", True), ("standard", False)])
async def test_bm25_stems_english_words_with_the_english_analyzer(
    opensearch_server, analyzer: str, found: bool
) -> None:
    """The english analyzer (the default) finds "leaves" and "approved" for "leave approval";
    the standard one needs the exact words."""
    settings = OpenSearchSettings(
        url=opensearch_server.url,
        engine=opensearch_server.engine,
        index_prefix=opensearch_server.unique_prefix("an"),
        text_analyzer=analyzer,
    )
    index = OpenSearchIndex(settings, model_id="m", dim=4, replicas=0)
    try:
        await index.ensure()
        vectors = _unit_rows(np.random.default_rng(3), 2, 4)
        records = _records("t", vectors)
        records[0] = records[0].model_copy(update={"text": "Parental leaves are approved by HR"})
        records[1] = records[1].model_copy(update={"text": "The kitchen is on the second floor"})
        await index.upsert(records)
        hits = await index.bm25("t", "leave approval", 5)
        assert [h.chunk.doc_id for h in hits] == (["d0"] if found else [])
    finally:
        try:
            await index.drop()
        finally:
            await index.close()


async def test_a_cluster_without_the_analyzer_gets_a_precise_error(opensearch_server) -> None:
    """The analyzer check names the missing module and the setting that avoids it (asked here
    with a language analyzer no distribution ships, so every node rejects it)."""
    settings = OpenSearchSettings(
        url=opensearch_server.url,
        engine=opensearch_server.engine,
        index_prefix=opensearch_server.unique_prefix("an"),
    )
    index = OpenSearchIndex(settings, model_id="m", dim=4, replicas=0)
    index.settings = settings.model_copy(update={"text_analyzer": "klingon"})
    index._body["mappings"]["properties"]["text"]["analyzer"] = "klingon"
    try:
        with pytest.raises(DependencyError, match=r"no 'klingon' analyzer.*TEXT_ANALYZER=standard"):
            await index.ensure()
    finally:
        await index.close()


def test_text_analyzer_is_checked() -> None:
    body = m.index_body(model_id="x", dim=8, engine="lucene", ef_construction=128, m=16)
    assert body["mappings"]["properties"]["text"]["analyzer"] == m.DEFAULT_TEXT_ANALYZER
    with pytest.raises(ValueError, match="text_analyzer must be one of"):
        m.index_body(
            model_id="x", dim=8, engine="lucene", ef_construction=128, m=16, text_analyzer="klingon"
        )


async def test_engine_comes_from_settings() -> None:
    body = m.index_body(model_id="x", dim=8, engine="faiss", ef_construction=128, m=16)
    assert body["mappings"]["properties"]["vector"]["method"]["engine"] == "faiss"
    with pytest.raises(ValueError):
        m.index_body(model_id="x", dim=8, engine="annoy", ef_construction=128, m=16)


async def test_ensure_is_idempotent_even_when_raced(make_index: MakeIndex) -> None:
    first = make_index()
    prefix = first.settings.index_prefix
    others = [make_index(prefix=prefix) for _ in range(3)]
    await asyncio.gather(*(i.ensure() for i in [first, *others]))
    await first.ensure()
    indices = await first.client.indices.get(index=f"{first.pattern_base}*")
    assert list(indices) == [f"{first.alias}-384-v1"]
    assert list(await first.client.indices.get_alias(name=first.alias)) == list(indices)
    await first.check()


async def test_ensure_refuses_an_alias_holding_another_dimension(make_index: MakeIndex) -> None:
    old = make_index(dim=384)
    await old.ensure()
    new = make_index(dim=256, prefix=old.settings.index_prefix)
    with pytest.raises(DependencyError, match="384-d"):
        await new.ensure()
    with pytest.raises(DependencyError):
        await new.check()


# -- check() ------------------------------------------------------------------------------------
async def test_check_fails_on_a_dead_url() -> None:
    settings = OpenSearchSettings(url=f"http://127.0.0.1:{_free_port()}", timeout_s=2)
    index = OpenSearchIndex(settings, model_id="m", dim=8)
    try:
        with pytest.raises(DependencyError, match="unreachable"):
            await index.check()
        # writes against a dead node are worth retrying, not dropping
        with pytest.raises(TransientError):
            await index.upsert(_records("t", _unit_rows(np.random.default_rng(0), 1, 8)))
    finally:
        await index.close()


async def test_upsert_before_ensure_fails_without_creating_a_stray_index(
    make_index: MakeIndex,
) -> None:
    index = make_index(dim=8)
    with pytest.raises(DependencyError):
        await index.upsert(_records("t", _unit_rows(np.random.default_rng(2), 2, 8)))
    assert not await index.client.indices.exists(index=index.alias)


async def test_check_fails_without_the_alias_and_passes_after_ensure(
    make_index: MakeIndex,
) -> None:
    index = make_index(dim=8)
    with pytest.raises(DependencyError, match="missing"):
        await index.check()
    await index.ensure()
    await index.check()


# -- queries ------------------------------------------------------------------------------------
def test_knn_body_has_tenant_and_filters_inside_the_knn_clause() -> None:
    filters = SearchFilters(sources=["s3"], doc_types=["pdf"])
    body = m.knn_query("acme", [0.1, 0.2], 7, filters, ef_search=100)
    assert "post_filter" not in body
    assert set(body["query"]) == {"knn"}
    knn = body["query"]["knn"]["vector"]
    assert knn["k"] == 7 and body["size"] == 7
    assert knn["filter"] == {
        "bool": {
            "filter": [
                {"term": {"tenant": "acme"}},
                {"terms": {"source": ["s3"]}},
                {"terms": {"doc_type": ["pdf"]}},
            ]
        }
    }
    assert knn["method_parameters"] == {"ef_search": 100}
    assert body["_source"] == {"excludes": ["vector"]}


def test_bm25_body_filters_with_the_same_clauses() -> None:
    body = m.bm25_query("acme", "vacation days", 5, SearchFilters(doc_ids=["a"]))
    bool_query = body["query"]["bool"]
    assert bool_query["must"] == [
        {"multi_match": {"query": "vacation days", "fields": ["title^2", "section", "text"]}}
    ]
    assert bool_query["filter"] == m.filter_clauses("acme", SearchFilters(doc_ids=["a"]))
    assert "post_filter" not in body


async def test_minority_tenant_gets_k_exact_hits_among_2000_docs_of_another(
    make_index: MakeIndex,
) -> None:
    dim = 384
    index = make_index(dim=dim)
    await index.ensure()
    rng = np.random.default_rng(42)
    query = _unit_rows(rng, 1, dim)[0]
    # the crowd sits right around the query; the minority is scattered far from it
    crowd = query + 0.05 * rng.normal(size=(2000, dim)).astype(np.float32)
    crowd /= np.linalg.norm(crowd, axis=1, keepdims=True)
    minority = _unit_rows(rng, 25, dim)
    assert await index.upsert(_records("big", crowd, "c")) == 2000
    assert await index.upsert(_records("small", minority, "s", source="s3")) == 25

    sent: list[dict[str, Any]] = []
    real_search = index.client.search

    async def spy(*args: Any, **kwargs: Any) -> Any:
        sent.append(kwargs["body"])
        return await real_search(*args, **kwargs)

    index.client.search = spy  # type: ignore[method-assign]
    hits = await index.knn("small", query.tolist(), 10)

    expected = np.argsort(-(minority @ query))[:10]
    assert [h.chunk.doc_id for h in hits] == [f"s{i}" for i in expected]
    assert {h.chunk.tenant for h in hits} == {"small"}
    for hit, i in zip(hits, expected, strict=True):
        assert hit.score == pytest.approx(float(minority[i] @ query), abs=1e-4)
    [body] = sent
    assert "post_filter" not in body
    assert body["query"]["knn"]["vector"]["filter"]["bool"]["filter"][0] == {
        "term": {"tenant": "small"}
    }
    # filters also inside: the minority's source alone, and nothing for the crowd's tenant
    assert len(await index.knn("small", query.tolist(), 10, SearchFilters(sources=["s3"]))) == 10
    assert await index.knn("big", query.tolist(), 10, SearchFilters(sources=["s3"])) == []
    assert await index.count("big") == 2000


async def test_knn_score_is_cosine_similarity(make_index: MakeIndex) -> None:
    index = make_index(dim=8)
    await index.ensure()
    vectors = _unit_rows(np.random.default_rng(1), 3, 8)
    await index.upsert(_records("t", vectors))
    hits = await index.knn("t", vectors[0].tolist(), 3)
    assert hits[0].chunk.doc_id == "d0"
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    for hit in hits[1:]:
        i = int(hit.chunk.doc_id[1:])
        assert hit.score == pytest.approx(float(vectors[i] @ vectors[0]), abs=1e-5)


async def test_get_chunks_pages_past_one_search_page(make_index: MakeIndex) -> None:
    index = make_index(dim=4)
    await index.ensure()
    vector = [0.5, 0.5, 0.5, 0.5]
    records = [
        ChunkRecord(
            id=ChunkRecord.make_id("big", v, n),
            tenant="t",
            doc_id="big",
            version=v,
            chunk_index=n,
            text="x",
            source="ftp",
            path="/big.pdf",
            vector=vector,
        )
        for v in ("a", "b")
        for n in range(1300)
    ]
    assert await index.upsert(records) == 2600
    got = await index.get_chunks("t", "big")
    assert [(c.version, c.chunk_index) for c in got] == [
        (v, n) for v in ("a", "b") for n in range(1300)
    ]


# -- blue/green ---------------------------------------------------------------------------------
async def test_blue_green_swap_alias(make_index: MakeIndex) -> None:
    blue = make_index(dim=8)
    await blue.ensure()
    rng = np.random.default_rng(3)
    await blue.upsert(_records("t", _unit_rows(rng, 2, 8), "old"))

    # a model revision: build v2 beside v1 while readers still use the alias (v1)
    green_name = await blue.create_index()
    assert green_name == f"{blue.alias}-8-v2"
    builder = make_index(dim=8, prefix=blue.settings.index_prefix, target=green_name)
    await builder.upsert(_records("t", _unit_rows(rng, 3, 8), "new"))
    assert await blue.count("t") == 2

    left = await blue.swap_alias(green_name)
    assert left == [f"{blue.alias}-8-v1"]
    assert list(await blue.client.indices.get_alias(name=blue.alias)) == [green_name]
    assert await blue.count("t") == 3
    assert {c.doc_id for c in await blue.get_chunks("t", "new0")} == {"new0"}
    await blue.check()

    other_dim = make_index(dim=16, prefix=blue.settings.index_prefix)
    with pytest.raises(DependencyError):
        await other_dim.swap_alias(green_name)  # 8-d index under a 16-d adapter
    with pytest.raises(ValueError):
        await blue.swap_alias(f"{blue.alias}-8-v9")


async def test_deterministic_ids_keep_tenants_apart(make_index: MakeIndex) -> None:
    index = make_index(dim=4)
    await index.ensure()
    vec = np.full((1, 4), 0.5, dtype=np.float32)
    # the same chunk id in two tenants (doc ids derive from source and path) stays two documents
    await index.upsert(_records("a:b", vec) + _records("a", vec))
    assert await index.count("a:b") == 1 and await index.count("a") == 1
    await index.upsert(_records("a", vec))
    assert await index.count() == 2


async def test_sigv4_auth_signs_every_request_for_the_configured_service() -> None:
    from aiohttp import web
    from botocore.credentials import Credentials

    from datatorag.adapters.opensearch.client import make_client

    seen: list[dict[str, str]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.json_response({"count": 0})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    settings = OpenSearchSettings(
        url=f"http://127.0.0.1:{port}", auth="sigv4", region="eu-west-1", service="aoss"
    )
    client = make_client(settings, credentials=Credentials("AKIDEXAMPLE", "secret", "tok"))
    try:
        assert await client.count(index="x", body={"query": {"match_all": {}}}) == {"count": 0}
    finally:
        await client.close()
        await runner.cleanup()
    [headers] = seen
    assert headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/aoss/aws4_request" in headers["Authorization"]
    assert headers["X-Amz-Security-Token"] == "tok"
    assert "x-amz-content-sha256" in headers["Authorization"]  # signed, as aoss requires
    assert "X-Amz-Date" in headers


def test_auth_settings_are_validated() -> None:
    from botocore.credentials import Credentials

    from datatorag.adapters.opensearch.client import http_auth, sigv4_auth

    sigv4 = OpenSearchSettings(auth="sigv4", region="eu-west-1", service="es")
    assert sigv4_auth(sigv4, Credentials("a", "b")).signer.service == "es"
    with pytest.raises(ValueError):
        sigv4_auth(sigv4.model_copy(update={"service": "s3"}), Credentials("a", "b"))
    with pytest.raises(ValueError):
        sigv4_auth(sigv4.model_copy(update={"region": None}), Credentials("a", "b"))
    with pytest.raises(ValueError):
        http_auth(OpenSearchSettings(auth="basic", username="u"))
    assert http_auth(OpenSearchSettings(auth="basic", username="u", password="p")) == ("u", "p")
    assert http_auth(OpenSearchSettings(auth="none")) is None
    with pytest.raises(ValueError):
        http_auth(OpenSearchSettings(auth="kerberos"))


def test_sigv4_auth_reads_the_default_credential_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    from datatorag.adapters.opensearch.client import sigv4_auth

    key = f"AKID{uuid.uuid4().hex[:12].upper()}"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    auth = sigv4_auth(OpenSearchSettings(auth="sigv4", service="es"))
    headers = auth("GET", "https://example.com/", None, {})
    assert f"Credential={key}/" in headers["Authorization"]
    assert "/us-west-2/es/aws4_request" in headers["Authorization"]


# -- refresh after upsert -----------------------------------------------------------------------
async def test_group_refresh_shares_one_refresh_among_callers_who_queue_meanwhile() -> None:
    from datatorag.adapters.opensearch.index import _GroupRefresh

    started: list[int] = []
    release = asyncio.Event()

    async def refresh() -> None:
        started.append(len(started))
        if len(started) == 1:
            await release.wait()  # the first refresh is slow; five callers queue behind it

    group = _GroupRefresh(refresh)
    first = asyncio.create_task(group())
    await asyncio.sleep(0)
    queued = [asyncio.create_task(group()) for _ in range(5)]
    await asyncio.sleep(0)
    assert started == [0] and not any(t.done() for t in [first, *queued])
    release.set()
    await asyncio.gather(first, *queued)
    assert started == [0, 1]  # one more refresh, started after all five asked, serves them all


async def test_group_refresh_hands_a_failure_to_its_waiters() -> None:
    from datatorag.adapters.opensearch.index import _GroupRefresh

    async def refresh() -> None:
        raise RuntimeError("node gone")

    group = _GroupRefresh(refresh)
    results = await asyncio.gather(group(), group(), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)


async def test_concurrent_upserts_are_each_searchable_when_they_return(
    make_index: MakeIndex,
) -> None:
    index = make_index(dim=8)
    await index.ensure()
    rng = np.random.default_rng(5)
    refreshes = 0
    real_refresh = index.client.indices.refresh

    async def counting_refresh(*args: Any, **kwargs: Any) -> Any:
        nonlocal refreshes
        refreshes += 1
        return await real_refresh(*args, **kwargs)

    index.client.indices.refresh = counting_refresh  # type: ignore[method-assign]

    async def write_then_read(n: int) -> int:
        await index.upsert(_records("t", _unit_rows(rng, 5, 8), f"doc{n}-"))
        return len(await index.get_chunks("t", f"doc{n}-4"))

    assert await asyncio.gather(*(write_then_read(n) for n in range(12))) == [1] * 12
    assert await index.count("t") == 60
    assert 1 <= refreshes <= 12
