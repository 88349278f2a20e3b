"""Conformance suite of the ``VectorIndex`` port (``datatorag.ports.vector_index``).

Reuse it for any adapter, in this repository or outside it: write a test module that star-imports
this module and provides a fixture named ``vector_index`` yielding the adapter under test, already
``ensure``d (and closing it afterwards)::

    import pytest

    from datatorag.testing.conformance.vector_index import *  # noqa: F403

    @pytest.fixture
    async def vector_index(tmp_path):
        adapter = MyIndex(..., dim=8)
        await adapter.ensure()
        yield adapter
        await adapter.close()

pytest collects the imported test functions as if they were written in that module. ``__all__``
lists every test function of the suite, the fixture it defines itself (``tenant``) and
``pytestmark`` (its timeout: pytest reads marks from the test module, so the star-import carries
them along); the helpers stay private. The tests are ``async def`` and need pytest-asyncio
(``asyncio_mode = "auto"``, or add ``pytest.mark.asyncio`` to your module's ``pytestmark``) and
pytest-timeout.

Each test works in its own random tenants, so adapters backed by one shared index work too.
Vectors are built for ``vector_index.dim`` (any dimension >= 4).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from datatorag.domain.models import ChunkRecord, SearchFilters, SearchHit
from datatorag.domain.principal import EVERYONE
from datatorag.ports import VectorIndex
from datatorag.testing.records import chunk_record

__all__ = [
    "pytestmark",
    "tenant",
    "test_audience_applies_inside_both_queries",
    "test_audience_is_validated_and_normalised",
    "test_audience_k_hits_even_when_hidden_chunks_dominate",
    "test_audience_none_sees_every_chunk_of_the_tenant",
    "test_bad_vectors_are_rejected",
    "test_bm25_k_hits_of_the_tenant_even_when_others_dominate",
    "test_bm25_ranks_relevant_text_first",
    "test_bm25_searches_the_title_too",
    "test_bm25_tolerates_query_syntax_characters",
    "test_count_per_tenant_and_total",
    "test_delete_document_keeps_the_named_version",
    "test_delete_named_versions_only",
    "test_empty_audience_sees_nothing",
    "test_ensure_is_idempotent_and_check_passes",
    "test_filter_values_are_escaped",
    "test_filters_apply_inside_the_query",
    "test_get_chunks_is_ordered_by_version_then_index",
    "test_hits_carry_the_whole_record",
    "test_knn_k_hits_of_the_tenant_even_when_others_dominate",
    "test_knn_returns_nearest_first_without_vectors",
    "test_set_groups_changes_one_version_without_reembedding",
    "test_upsert_is_idempotent_by_id",
    "test_upsert_of_nothing",
    "test_upsert_replaces_a_record_with_the_same_id",
    "test_writes_are_searchable_as_soon_as_upsert_returns",
]

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def _unit(dim: int, *weights: float) -> list[float]:
    """A unit vector whose first components are ``weights`` (rest 0)."""
    v = np.zeros(dim, dtype=np.float64)
    v[: len(weights)] = weights
    return [float(x) for x in v / np.linalg.norm(v)]


def _chunk(
    index: VectorIndex,
    tenant: str,
    doc_id: str,
    n: int = 0,
    *,
    version: str = "v1",
    text: str = "plain words",
    vector: list[float] | None = None,
    **kw: Any,
) -> ChunkRecord:
    fields: dict[str, Any] = {"source": "ftp", "path": f"/in/{doc_id}.pdf", **kw}
    vec = vector if vector is not None else _unit(index.dim, 1, 1, 1, 1)
    return chunk_record(doc_id, text, vec, tenant=tenant, version=version, chunk_index=n, **fields)


def _ids(hits: Sequence[SearchHit]) -> list[str]:
    return [h.chunk.id for h in hits]


async def test_ensure_is_idempotent_and_check_passes(
    vector_index: VectorIndex, tenant: str
) -> None:
    await vector_index.ensure()
    await vector_index.ensure()
    await vector_index.check()
    assert await vector_index.count(tenant) == 0


async def test_upsert_is_idempotent_by_id(vector_index: VectorIndex, tenant: str) -> None:
    records = [_chunk(vector_index, tenant, "d1", n) for n in range(3)]
    assert await vector_index.upsert(records) == 3
    assert await vector_index.upsert(records) == 3
    assert await vector_index.count(tenant) == 3
    assert len(await vector_index.get_chunks(tenant, "d1")) == 3


async def test_upsert_of_nothing(vector_index: VectorIndex, tenant: str) -> None:
    assert await vector_index.upsert([]) == 0
    assert await vector_index.count(tenant) == 0


async def test_upsert_replaces_a_record_with_the_same_id(
    vector_index: VectorIndex, tenant: str
) -> None:
    await vector_index.upsert([_chunk(vector_index, tenant, "d1", text="ancient walrus")])
    await vector_index.upsert([_chunk(vector_index, tenant, "d1", text="modern pelican")])
    [chunk] = await vector_index.get_chunks(tenant, "d1")
    assert chunk.text == "modern pelican"
    assert _ids(await vector_index.bm25(tenant, "pelican", 5)) == [chunk.id]
    assert await vector_index.bm25(tenant, "walrus", 5) == []


async def test_knn_returns_nearest_first_without_vectors(
    vector_index: VectorIndex, tenant: str
) -> None:
    dim = vector_index.dim
    records = [
        _chunk(vector_index, tenant, "near", vector=_unit(dim, 1, 0.05)),
        _chunk(vector_index, tenant, "mid", vector=_unit(dim, 1, 1)),
        _chunk(vector_index, tenant, "far", vector=_unit(dim, 0, 1)),
        _chunk(vector_index, tenant, "opposite", vector=_unit(dim, -1, 0)),
    ]
    await vector_index.upsert(records)
    hits = await vector_index.knn(tenant, _unit(dim, 1, 0), 4)
    assert [h.chunk.doc_id for h in hits] == ["near", "mid", "far", "opposite"]
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True) and scores[0] > scores[-1]
    assert all(h.chunk.vector is None for h in hits)
    assert [h.chunk.doc_id for h in await vector_index.knn(tenant, _unit(dim, 1, 0), 2)] == [
        "near",
        "mid",
    ]


async def test_hits_carry_the_whole_record(vector_index: VectorIndex, tenant: str) -> None:
    updated = datetime(2024, 3, 4, 5, 6, 7, 123000, tzinfo=UTC)
    rec = _chunk(
        vector_index,
        tenant,
        "full",
        n=2,
        version="abc123",
        text="The quarterly revenue grew strongly.",
        title="Annual Report",
        section="Finance",
        page_start=3,
        page_end=4,
        source="s3-landing",
        path="/reports/annual.pdf",
        doc_type="pdf",
        updated_at=updated,
    )
    await vector_index.upsert([rec])
    expected = rec.model_copy(update={"vector": None})
    assert rec.vector is not None
    [knn_hit] = await vector_index.knn(tenant, rec.vector, 1)
    [bm25_hit] = await vector_index.bm25(tenant, "revenue", 1)
    [stored] = await vector_index.get_chunks(tenant, "full")
    for got in (knn_hit.chunk, bm25_hit.chunk, stored):
        assert got.model_dump(exclude={"vector", "updated_at"}) == expected.model_dump(
            exclude={"vector", "updated_at"}
        )
        assert abs(got.updated_at - updated) < timedelta(milliseconds=1)


async def test_knn_k_hits_of_the_tenant_even_when_others_dominate(
    vector_index: VectorIndex, tenant: str
) -> None:
    dim = vector_index.dim
    other = tenant + "-other"
    query = _unit(dim, 1, 0)
    crowd = [
        _chunk(vector_index, other, f"o{i}", vector=_unit(dim, 1, 0.001 * i)) for i in range(300)
    ]
    mine = [_chunk(vector_index, tenant, f"m{i}", vector=_unit(dim, 0.2 * i, 1)) for i in range(5)]
    await vector_index.upsert(crowd)
    await vector_index.upsert(mine)
    hits = await vector_index.knn(tenant, query, 5)
    assert len(hits) == 5
    assert {h.chunk.tenant for h in hits} == {tenant}
    assert [h.chunk.doc_id for h in hits] == ["m4", "m3", "m2", "m1", "m0"]
    assert len(await vector_index.knn(tenant, query, 50)) == 5  # only what exists
    assert await vector_index.knn(tenant + "-nobody", query, 5) == []


async def test_bm25_k_hits_of_the_tenant_even_when_others_dominate(
    vector_index: VectorIndex, tenant: str
) -> None:
    other = tenant + "-other"
    crowd = [
        _chunk(vector_index, other, f"o{i}", text="kumquat kumquat kumquat orchard")
        for i in range(300)
    ]
    mine = [
        _chunk(vector_index, tenant, f"m{i}", text=f"a kumquat among {i} other fruits")
        for i in range(4)
    ]
    await vector_index.upsert(crowd)
    await vector_index.upsert(mine)
    hits = await vector_index.bm25(tenant, "kumquat", 4)
    assert len(hits) == 4
    assert {h.chunk.tenant for h in hits} == {tenant}
    assert all(h.chunk.vector is None for h in hits)


async def test_bm25_ranks_relevant_text_first(vector_index: VectorIndex, tenant: str) -> None:
    await vector_index.upsert(
        [
            _chunk(
                vector_index,
                tenant,
                "vacation",
                text="Employees accrue vacation days monthly. "
                "Unused vacation days carry over; vacation requests need approval.",
            ),
            _chunk(
                vector_index,
                tenant,
                "mention",
                text="The handbook mentions vacation once "
                "among many other topics such as expenses, laptops and parking.",
            ),
            _chunk(vector_index, tenant, "unrelated", text="Quarterly revenue and margins."),
        ]
    )
    hits = await vector_index.bm25(tenant, "vacation days", 10)
    assert [h.chunk.doc_id for h in hits] == ["vacation", "mention"]
    assert hits[0].score > hits[1].score > 0
    assert await vector_index.bm25(tenant, "xylophone", 10) == []


async def test_bm25_searches_the_title_too(vector_index: VectorIndex, tenant: str) -> None:
    await vector_index.upsert(
        [
            _chunk(
                vector_index, tenant, "t", text="nothing special here", title="Onboarding Guide"
            ),
            _chunk(vector_index, tenant, "u", text="nothing special either", title="Expenses"),
        ]
    )
    assert [h.chunk.doc_id for h in await vector_index.bm25(tenant, "onboarding", 5)] == ["t"]


async def test_bm25_tolerates_query_syntax_characters(
    vector_index: VectorIndex, tenant: str
) -> None:
    await vector_index.upsert([_chunk(vector_index, tenant, "d", text="error code E42 in module")])
    for q in ['"E42', "module: (error", "error AND OR NOT", "e42*?", "a/b\\c [x] {y} ~z ^2 -"]:
        hits = await vector_index.bm25(tenant, q, 5)
        assert all(h.chunk.tenant == tenant for h in hits)
    assert [h.chunk.doc_id for h in await vector_index.bm25(tenant, "module: (error", 5)] == ["d"]


async def test_writes_are_searchable_as_soon_as_upsert_returns(
    vector_index: VectorIndex, tenant: str
) -> None:
    dim = vector_index.dim
    await vector_index.upsert([_chunk(vector_index, tenant, "first", text="alpha bravo")])
    assert _ids(await vector_index.bm25(tenant, "alpha", 5))
    # A second write after the first search (and any index built by then) is visible at once.
    await vector_index.upsert(
        [_chunk(vector_index, tenant, "second", text="charlie delta", vector=_unit(dim, 0, 0, 1))]
    )
    assert [h.chunk.doc_id for h in await vector_index.bm25(tenant, "charlie", 5)] == ["second"]
    [hit] = await vector_index.knn(tenant, _unit(dim, 0, 0, 1), 1)
    assert hit.chunk.doc_id == "second"
    await vector_index.delete_document(tenant, "second")
    assert await vector_index.bm25(tenant, "charlie", 5) == []
    assert "second" not in [
        h.chunk.doc_id for h in await vector_index.knn(tenant, _unit(dim, 0, 0, 1), 5)
    ]


async def test_filters_apply_inside_the_query(vector_index: VectorIndex, tenant: str) -> None:
    dim = vector_index.dim
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    crowd = [
        _chunk(
            vector_index,
            tenant,
            f"crowd{i}",
            text="budget budget budget",
            source="ftp",
            doc_type="pdf",
            vector=_unit(dim, 1, 0.001 * i),
            updated_at=t0,
        )
        for i in range(200)
    ]
    special = [
        _chunk(
            vector_index,
            tenant,
            "s3doc",
            text="budget plan",
            source="s3",
            doc_type="docx",
            vector=_unit(dim, 0.1, 1),
            updated_at=t0 + timedelta(days=10),
        ),
        _chunk(
            vector_index,
            tenant,
            "s3html",
            text="budget notes",
            source="s3",
            doc_type="html",
            vector=_unit(dim, 0.2, 1),
            updated_at=t0 + timedelta(days=20),
        ),
    ]
    await vector_index.upsert(crowd + special)
    query = _unit(dim, 1, 0)

    async def both(filters: SearchFilters, k: int = 5) -> tuple[set[str], set[str]]:
        knn = await vector_index.knn(tenant, query, k, filters)
        bm25 = await vector_index.bm25(tenant, "budget", k, filters)
        return {h.chunk.doc_id for h in knn}, {h.chunk.doc_id for h in bm25}

    assert await both(SearchFilters(sources=["s3"])) == ({"s3doc", "s3html"},) * 2
    assert await both(SearchFilters(doc_types=["html"])) == ({"s3html"},) * 2
    assert (
        await both(SearchFilters(doc_types=["docx", "html"], sources=["s3", "sftp"]))
        == ({"s3doc", "s3html"},) * 2
    )
    assert await both(SearchFilters(doc_ids=["s3doc", "crowd7"])) == ({"s3doc", "crowd7"},) * 2
    assert (
        await both(SearchFilters(updated_after=t0 + timedelta(days=5)))
        == ({"s3doc", "s3html"},) * 2
    )
    assert (
        await both(
            SearchFilters(
                updated_after=t0 + timedelta(days=5), updated_before=t0 + timedelta(days=15)
            )
        )
        == ({"s3doc"},) * 2
    )
    assert await both(SearchFilters(sources=["nowhere"])) == (set(), set())
    # k hits whenever k matching chunks exist, however many non-matching rows rank above them
    knn, bm25 = await both(SearchFilters(sources=["ftp"]), k=7)
    assert len(knn) == len(bm25) == 7


async def test_filter_values_are_escaped(vector_index: VectorIndex, tenant: str) -> None:
    await vector_index.upsert([_chunk(vector_index, tenant, "d", source="o'brien's share")])
    hits = await vector_index.knn(
        tenant, _unit(vector_index.dim, 1, 1, 1, 1), 5, SearchFilters(sources=["o'brien's share"])
    )
    assert _ids(hits) == ["d:v1:0"]
    hits = await vector_index.knn(
        tenant, _unit(vector_index.dim, 1, 1, 1, 1), 5, SearchFilters(sources=["x' OR '1'='1"])
    )
    assert hits == []
    assert await vector_index.count(tenant + "' OR '1'='1") == 0


async def test_get_chunks_is_ordered_by_version_then_index(
    vector_index: VectorIndex, tenant: str
) -> None:
    records = [
        _chunk(vector_index, tenant, "d", n, version=v) for v in ("v1", "v2") for n in range(12)
    ]
    records.append(_chunk(vector_index, tenant, "other-doc", 0))
    random.Random(7).shuffle(records)
    await vector_index.upsert(records)
    got = await vector_index.get_chunks(tenant, "d")
    assert [(c.version, c.chunk_index) for c in got] == [
        (v, n) for v in ("v1", "v2") for n in range(12)
    ]
    assert await vector_index.get_chunks(tenant, "missing") == []
    assert await vector_index.get_chunks(tenant + "-x", "d") == []


async def test_delete_document_keeps_the_named_version(
    vector_index: VectorIndex, tenant: str
) -> None:
    other = tenant + "-other"
    old = [_chunk(vector_index, tenant, "d", n, version="v1") for n in range(3)]
    new = [_chunk(vector_index, tenant, "d", n, version="v2") for n in range(2)]
    unrelated = [
        _chunk(vector_index, tenant, "e", 0),
        _chunk(vector_index, other, "d", 0, version="v1"),
    ]
    await vector_index.upsert(old + new + unrelated)
    assert await vector_index.delete_document(tenant, "d", keep_version="v2") == 3
    assert [(c.version, c.chunk_index) for c in await vector_index.get_chunks(tenant, "d")] == [
        ("v2", 0),
        ("v2", 1),
    ]
    assert await vector_index.delete_document(tenant, "d", keep_version="v2") == 0
    assert await vector_index.delete_document(tenant, "d") == 2
    assert await vector_index.get_chunks(tenant, "d") == []
    assert await vector_index.delete_document(tenant, "d") == 0
    # other documents and other tenants' chunks of the same doc id are untouched
    assert len(await vector_index.get_chunks(tenant, "e")) == 1
    assert len(await vector_index.get_chunks(other, "d")) == 1


async def test_delete_named_versions_only(vector_index: VectorIndex, tenant: str) -> None:
    """A writer drops the versions it knows to be older; a newer one is never touched."""
    other = tenant + "-other"
    await vector_index.upsert(
        [
            _chunk(vector_index, tenant, "d", n, version=v)
            for v in ("v1", "v2", "v3")
            for n in (0, 1)
        ]
        + [_chunk(vector_index, other, "d", 0, version="v1")]
    )
    assert await vector_index.delete_document(tenant, "d", versions=[]) == 0
    assert await vector_index.delete_document(tenant, "d", versions=["v1", "v2"]) == 4
    left = {(c.version, c.chunk_index) for c in await vector_index.get_chunks(tenant, "d")}
    assert left == {("v3", 0), ("v3", 1)}
    assert await vector_index.delete_document(tenant, "d", versions=["v1"]) == 0
    assert len(await vector_index.get_chunks(other, "d")) == 1  # other tenants untouched


async def test_count_per_tenant_and_total(vector_index: VectorIndex, tenant: str) -> None:
    other = tenant + "-other"
    await vector_index.upsert([_chunk(vector_index, tenant, "a", n) for n in range(4)])
    await vector_index.upsert([_chunk(vector_index, other, "a", n) for n in range(2)])
    assert await vector_index.count(tenant) == 4
    assert await vector_index.count(other) == 2
    assert await vector_index.count() >= 6


async def test_bad_vectors_are_rejected(vector_index: VectorIndex, tenant: str) -> None:
    with pytest.raises(ValueError):
        await vector_index.upsert([_chunk(vector_index, tenant, "d", vector=[1.0, 0.0])])
    with pytest.raises(ValueError):
        await vector_index.knn(tenant, [1.0, 0.0], 3)
    assert await vector_index.count(tenant) == 0


# -- audiences ------------------------------------------------------------------------------------
HR = frozenset({"hr", EVERYONE})  # a reader of group hr: Principal(groups={"hr"}).audience()
STAFF = frozenset({EVERYONE})  # a reader of no group


async def _audience_corpus(index: VectorIndex, tenant: str) -> None:
    await index.upsert(
        [
            _chunk(
                index, tenant, "open", text="salary bands policy", vector=_unit(index.dim, 1, 0.1)
            ),
            _chunk(
                index, tenant, "hr-only", text="salary bands policy", groups=["hr"],
                vector=_unit(index.dim, 1, 0.2),
            ),
            _chunk(
                index, tenant, "mgr", text="salary bands policy", groups=["managers", "hr"],
                vector=_unit(index.dim, 1, 0.3),
            ),
            _chunk(
                index, tenant, "exec", text="salary bands policy", groups=["exec"],
                vector=_unit(index.dim, 1, 0.05),
            ),
        ]
    )  # fmt: skip


def _docs(hits: Sequence[SearchHit]) -> set[str]:
    return {h.chunk.doc_id for h in hits}


async def test_audience_applies_inside_both_queries(vector_index: VectorIndex, tenant: str) -> None:
    await _audience_corpus(vector_index, tenant)
    q = _unit(vector_index.dim, 1, 0.1)
    for audience, expected in (
        (STAFF, {"open"}),
        (HR, {"open", "hr-only", "mgr"}),
        (frozenset({"managers"}), {"mgr"}),  # without everyone: only what names the group
        (frozenset({"exec", EVERYONE}), {"open", "exec"}),
    ):
        knn = await vector_index.knn(tenant, q, 10, audience=audience)
        bm25 = await vector_index.bm25(tenant, "salary bands", 10, audience=audience)
        assert _docs(knn) == expected, audience
        assert _docs(bm25) == expected, audience
    hit = (await vector_index.knn(tenant, q, 10, audience=frozenset({"managers"})))[0]
    assert hit.chunk.groups == ("hr", "managers")  # hits carry the groups, sorted


async def test_audience_none_sees_every_chunk_of_the_tenant(
    vector_index: VectorIndex, tenant: str
) -> None:
    await _audience_corpus(vector_index, tenant)
    other = f"{tenant}-other"
    await vector_index.upsert([_chunk(vector_index, other, "theirs", text="salary bands")])
    q = _unit(vector_index.dim, 1, 0.1)
    assert _docs(await vector_index.knn(tenant, q, 10)) == {"open", "hr-only", "mgr", "exec"}
    assert _docs(await vector_index.bm25(tenant, "salary", 10, audience=None)) == {
        "open", "hr-only", "mgr", "exec",
    }  # fmt: skip


async def test_empty_audience_sees_nothing(vector_index: VectorIndex, tenant: str) -> None:
    await _audience_corpus(vector_index, tenant)
    q = _unit(vector_index.dim, 1, 0.1)
    assert await vector_index.knn(tenant, q, 10, audience=frozenset()) == []
    assert await vector_index.bm25(tenant, "salary", 10, audience=frozenset()) == []


async def test_audience_k_hits_even_when_hidden_chunks_dominate(
    vector_index: VectorIndex, tenant: str
) -> None:
    """90 hidden chunks nearer the query than the 10 visible ones: a post-filter would return
    none of them; inside the query all 10 come back."""
    near = _unit(vector_index.dim, 1, 0.01)
    far = _unit(vector_index.dim, 1, 1, 1)
    hidden = [
        _chunk(vector_index, tenant, f"h{i}", text="bonus plan", vector=near, groups=["exec"])
        for i in range(90)
    ]
    shown = [
        _chunk(vector_index, tenant, f"s{i}", text="bonus plan appendix", vector=far,
               groups=["hr"])
        for i in range(10)
    ]  # fmt: skip
    await vector_index.upsert(hidden + shown)
    q = _unit(vector_index.dim, 1, 0.01)
    knn = await vector_index.knn(tenant, q, 10, audience=HR)
    bm25 = await vector_index.bm25(tenant, "bonus plan", 10, audience=HR)
    assert _docs(knn) == {f"s{i}" for i in range(10)}
    assert _docs(bm25) == {f"s{i}" for i in range(10)}


async def test_set_groups_changes_one_version_without_reembedding(
    vector_index: VectorIndex, tenant: str
) -> None:
    v1 = [_chunk(vector_index, tenant, "d", n, version="v1", text="leave policy") for n in range(3)]
    v2 = [_chunk(vector_index, tenant, "d", 0, version="v2", text="leave policy")]
    await vector_index.upsert(v1 + v2)
    assert await vector_index.set_groups(tenant, "d", "v1", ["managers", "hr"]) == 3
    chunks = await vector_index.get_chunks(tenant, "d")
    assert [(c.version, c.groups) for c in chunks] == [
        ("v1", ("hr", "managers")), ("v1", ("hr", "managers")), ("v1", ("hr", "managers")),
        ("v2", (EVERYONE,)),
    ]  # fmt: skip
    assert [c.text for c in chunks] == ["leave policy"] * 4  # the rest of the record stays
    q = _unit(vector_index.dim, 1, 1, 1, 1)
    staff = await vector_index.knn(tenant, q, 10, audience=STAFF)
    assert {(h.chunk.version, h.chunk.chunk_index) for h in staff} == {("v2", 0)}
    hr = await vector_index.bm25(tenant, "leave", 10, audience=HR)
    assert len(hr) == 4
    assert hr[0].score > 0  # still searchable by its text and vector
    knn_hr = await vector_index.knn(tenant, q, 10, audience=HR)
    assert all(h.score > 0.99 for h in knn_hr)  # the vectors are the ones written
    # back to everyone; another tenant's or an unknown version changes nothing
    assert await vector_index.set_groups(tenant, "d", "v1", [EVERYONE]) == 3
    assert len(await vector_index.knn(tenant, q, 10, audience=STAFF)) == 4
    assert await vector_index.set_groups(f"{tenant}-x", "d", "v1", ["hr"]) == 0
    assert await vector_index.set_groups(tenant, "d", "v9", ["hr"]) == 0


async def test_audience_is_validated_and_normalised(vector_index: VectorIndex, tenant: str) -> None:
    with pytest.raises(ValueError):
        _chunk(vector_index, tenant, "d", groups=[])
    with pytest.raises(ValueError):
        _chunk(vector_index, tenant, "d", groups=["bad\x00name"])
    record = _chunk(vector_index, tenant, "d", groups=["b", "a", "b", EVERYONE])
    assert record.groups == (EVERYONE,)  # everyone sees it anyway
    await vector_index.upsert([_chunk(vector_index, tenant, "d", groups=[" o'brien ", "a"])])
    hits = await vector_index.bm25(tenant, "plain", 5, audience=frozenset({"o'brien"}))
    assert [h.chunk.groups for h in hits] == [("a", "o'brien")]  # quotes are values, not SQL
    with pytest.raises(ValueError):
        await vector_index.set_groups(tenant, "d", "v1", [])
