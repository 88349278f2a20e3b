"""Reciprocal rank fusion and the hybrid search driver's fusion logic.

The index here is a tiny in-test VectorIndex that returns fixed ranked lists: it exists only to
pin down fusion order, candidate counts and concurrency. Retrieval against real adapters is
tested in ``tests/integration/test_gateway*.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from datatorag.domain.models import ChunkRecord, SearchFilters, SearchHit
from datatorag.ports import VectorIndex
from datatorag.retrieval import hybrid
from datatorag.retrieval.rrf import rrf_fuse


def hit(cid: str, score: float = 1.0) -> SearchHit:
    doc, _, n = cid.partition("#")
    chunk = ChunkRecord(
        id=cid,
        tenant="t",
        doc_id=doc,
        version="v1",
        chunk_index=int(n or 0),
        text=cid,
        source="s",
        path=f"{doc}.txt",
    )
    return SearchHit(chunk=chunk, score=score)


def ids(hits: Sequence[SearchHit]) -> list[str]:
    return [h.chunk.id for h in hits]


# ---------------------------------------------------------------- rrf_fuse


def test_rrf_scores_are_sum_of_reciprocal_ranks() -> None:
    fused = rrf_fuse({"knn": [hit("a"), hit("b")], "bm25": [hit("b"), hit("c")]}, k=60)
    by_id = {h.chunk.id: h for h in fused}
    assert by_id["b"].score == pytest.approx(1 / 62 + 1 / 61)
    assert by_id["a"].score == pytest.approx(1 / 61)
    assert by_id["c"].score == pytest.approx(1 / 62)
    assert ids(fused) == ["b", "a", "c"]  # found by both beats first place in one
    assert by_id["b"].ranks == {"knn": 2, "bm25": 1}
    assert by_id["a"].ranks == {"knn": 1}


def test_rrf_agreement_outranks_single_top_hit() -> None:
    knn = [hit("x"), hit("shared"), hit("k3")]
    bm25 = [hit("y"), hit("shared"), hit("b3")]
    assert ids(rrf_fuse({"knn": knn, "bm25": bm25}))[0] == "shared"


def test_rrf_ties_are_deterministic() -> None:
    # a and b both rank 1 in one list: same score, same best rank -> chunk id decides
    fused = rrf_fuse({"knn": [hit("b")], "bm25": [hit("a")]})
    assert ids(fused) == ["a", "b"]
    again = rrf_fuse({"bm25": [hit("a")], "knn": [hit("b")]})
    assert ids(again) == ids(fused)


def test_rrf_weights_shift_the_order() -> None:
    lists = {"knn": [hit("a"), hit("b")], "bm25": [hit("b"), hit("a")]}
    assert ids(rrf_fuse(lists, weights={"knn": 2.0}))[0] == "a"
    assert ids(rrf_fuse(lists, weights={"bm25": 2.0}))[0] == "b"
    zero = rrf_fuse(lists, weights={"knn": 0.0})
    assert ids(zero) == ["b", "a"] and zero[0].score == pytest.approx(1 / 61)


def test_rrf_small_k_favours_top_ranks_more() -> None:
    # "a": rank 1 in knn only; "b": rank 3 in both. Large k rewards agreement, small k the top.
    lists = {"knn": [hit("a"), hit("x"), hit("b")], "bm25": [hit("y"), hit("z"), hit("b")]}
    assert ids(rrf_fuse(lists, k=60))[0] == "b"
    assert ids(rrf_fuse(lists, k=1))[0] == "a"


def test_rrf_limit_and_duplicates_within_a_list() -> None:
    fused = rrf_fuse({"knn": [hit("a"), hit("a"), hit("b")], "bm25": []}, limit=1)
    assert ids(fused) == ["a"]
    assert fused[0].ranks == {"knn": 1}  # the repeat is ignored, not counted twice
    assert fused[0].score == pytest.approx(1 / 61)


def test_rrf_empty_and_invalid_arguments() -> None:
    assert rrf_fuse({"knn": [], "bm25": []}) == []
    with pytest.raises(ValueError, match="k must be"):
        rrf_fuse({"knn": [hit("a")]}, k=0)
    with pytest.raises(ValueError, match="unknown retrievers"):
        rrf_fuse({"knn": [hit("a")]}, weights={"bm42": 1.0})
    with pytest.raises(ValueError, match=">= 0"):
        rrf_fuse({"knn": [hit("a")]}, weights={"knn": -1.0})


# ---------------------------------------------------------------- hybrid.search


class FixedIndex(VectorIndex):
    """Returns fixed best-first lists, truncated to k; records every call."""

    dim = 3

    def __init__(self, knn: list[str], bm25: list[str], *, rendezvous: bool = False) -> None:
        self._knn = knn
        self._bm25 = bm25
        self.calls: list[tuple[str, str, int, SearchFilters | None]] = []
        self.audiences: list[frozenset[str] | None] = []
        # with rendezvous, each retriever waits until the other has started: a sequential
        # implementation would time out
        self._started = {"knn": asyncio.Event(), "bm25": asyncio.Event()} if rendezvous else None

    async def _meet(self, me: str, other: str) -> None:
        if self._started is not None:
            self._started[me].set()
            await asyncio.wait_for(self._started[other].wait(), timeout=2)

    async def knn(self, tenant, vector, k, filters=None, *, audience=None):
        self.calls.append(("knn", tenant, k, filters))
        self.audiences.append(audience)
        await self._meet("knn", "bm25")
        return [hit(c, 1.0 - i / 100) for i, c in enumerate(self._knn[:k])]

    async def bm25(self, tenant, text, k, filters=None, *, audience=None):
        self.calls.append(("bm25", tenant, k, filters))
        self.audiences.append(audience)
        await self._meet("bm25", "knn")
        return [hit(c, 10.0 - i) for i, c in enumerate(self._bm25[:k])]

    async def ensure(self): ...
    async def upsert(self, records):
        return 0

    async def delete_document(self, tenant, doc_id, *, keep_version=None, versions=None):
        return 0

    async def get_chunks(self, tenant, doc_id):
        return []

    async def set_groups(self, tenant, doc_id, version, groups):
        return 0

    async def count(self, tenant=None):
        return 0

    async def check(self): ...


VEC = [1.0, 0.0, 0.0]


async def test_hybrid_runs_both_retrievers_concurrently_and_fuses() -> None:
    index = FixedIndex(["a", "b", "c"], ["c", "d", "a"], rendezvous=True)
    filters = SearchFilters(sources=["s"])
    hits = await hybrid.search(
        index, None, "acme", "q", 3, filters, query_vector=VEC, audience=None
    )
    assert ids(hits) == ["a", "c", "b"]
    assert hits[0].ranks == {"knn": 1, "bm25": 3}
    assert hits[1].ranks == {"knn": 3, "bm25": 1}
    # each retriever got the candidate count, the tenant and the filters
    assert sorted(index.calls, key=lambda c: c[0]) == [
        ("bm25", "acme", 10, filters),
        ("knn", "acme", 10, filters),
    ]


async def test_hybrid_candidates_default_and_override() -> None:
    index = FixedIndex([f"k{i}" for i in range(300)], [f"b{i}" for i in range(300)])
    hits = await hybrid.search(index, None, "t", "q", 40, query_vector=VEC, audience=None)
    assert len(hits) == 40 and {c[2] for c in index.calls} == {40}  # max(10, k)
    index.calls.clear()
    await hybrid.search(index, None, "t", "q", 5, candidates=7, query_vector=VEC, audience=None)
    assert {c[2] for c in index.calls} == {7}
    with pytest.raises(ValueError, match="candidates"):
        await hybrid.search(index, None, "t", "q", 5, candidates=4, query_vector=VEC, audience=None)


async def test_single_retriever_modes_keep_native_scores_and_ranks() -> None:
    index = FixedIndex(["a", "b"], ["c", "a"])
    knn = await hybrid.search(index, None, "t", "q", 5, mode="knn", query_vector=VEC, audience=None)
    assert ids(knn) == ["a", "b"] and knn[0].score == pytest.approx(1.0)
    assert [h.ranks for h in knn] == [{"knn": 1}, {"knn": 2}]
    bm25 = await hybrid.search(index, None, "t", "q", 5, mode="bm25", audience=None)
    assert ids(bm25) == ["c", "a"] and bm25[0].score == pytest.approx(10.0)
    assert [h.ranks for h in bm25] == [{"bm25": 1}, {"bm25": 2}]
    assert [c[0] for c in index.calls] == ["knn", "bm25"]  # each mode queried one retriever


async def test_hybrid_failure_surfaces_the_real_error() -> None:
    class Broken(FixedIndex):
        async def bm25(self, tenant, text, k, filters=None, *, audience=None):
            raise RuntimeError("bm25 down")

    with pytest.raises(RuntimeError, match="bm25 down"):
        await hybrid.search(Broken(["a"], []), None, "t", "q", 1, query_vector=VEC, audience=None)


async def test_hybrid_argument_errors() -> None:
    index = FixedIndex(["a"], ["a"])
    with pytest.raises(ValueError, match="embedder or a query_vector"):
        await hybrid.search(index, None, "t", "q", 1, audience=None)
    with pytest.raises(ValueError, match="tenant"):
        await hybrid.search(index, None, "", "q", 1, query_vector=VEC, audience=None)
    with pytest.raises(ValueError, match="k must be"):
        await hybrid.search(index, None, "t", "q", 0, query_vector=VEC, audience=None)
    with pytest.raises(ValueError):
        await hybrid.search(
            index, None, "t", "q", 1, mode="semantic", query_vector=VEC, audience=None
        )


async def test_limiter_bounds_index_queries_in_flight() -> None:
    class Counting(FixedIndex):
        in_flight = peak = 0

        async def _meet(self, me: str, other: str) -> None:
            Counting.in_flight += 1
            Counting.peak = max(Counting.peak, Counting.in_flight)
            await asyncio.sleep(0.01)
            Counting.in_flight -= 1

    index = Counting(["a", "b"], ["b", "a"])
    limiter = asyncio.Semaphore(3)
    results = await asyncio.gather(
        *(
            hybrid.search(
                index, None, "t", "q", 2, query_vector=VEC, limiter=limiter, audience=None
            )
            for _ in range(8)
        )
    )
    assert Counting.peak == 3  # 16 index calls, never more than 3 at once
    assert all(ids(r) == ["a", "b"] for r in results)
    Counting.peak = 0
    await asyncio.gather(
        *(
            hybrid.search(index, None, "t", "q", 2, query_vector=VEC, audience=None)
            for _ in range(8)
        )
    )
    assert Counting.peak == 16  # unbounded without a limiter


async def test_hybrid_passes_the_audience_into_both_index_queries() -> None:
    index = FixedIndex(["a", "b"], ["b", "c"])
    hr = frozenset({"hr", "everyone"})
    await hybrid.search(index, None, "t", "q", 2, query_vector=VEC, audience=hr)
    assert index.audiences == [hr, hr]
    await hybrid.search(index, None, "t", "q", 2, mode="bm25", audience=frozenset())
    assert index.audiences[-1] == frozenset()  # an empty audience is passed, not dropped
