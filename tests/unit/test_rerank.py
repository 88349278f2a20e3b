"""The reranker hook: reordering the head of the fused list, hybrid.search with a reranker, and
the cross-encoder adapter's loader.

No trained cross-encoder is published on PyPI, so the adapter is exercised with a cross-encoder
built on the shipped MiniLM weights (its scoring head is untrained: the test checks loading,
shapes, order and determinism, not quality). The fusion tests reuse test_rrf's fixed index.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from datatorag.domain.errors import DependencyError
from datatorag.ports import Reranker
from datatorag.retrieval import hybrid
from datatorag.retrieval.rerank import rerank
from tests.unit.test_rrf import VEC, FixedIndex, hit, ids


class ByLength(Reranker):
    """Scores a passage by its length: a stand-in whose order is obvious."""

    model_id = "by-length"

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []

    async def scores(self, query: str, passages: Sequence[str]) -> list[float]:
        self.calls.append((query, list(passages)))
        return [float(len(p)) for p in passages]


async def test_rerank_reorders_the_head_and_keeps_the_tail() -> None:
    hits = [hit("a"), hit("ccc"), hit("bb"), hit("dddd")]
    out = await rerank(ByLength(), "q", hits, depth=3)
    assert ids(out) == ["ccc", "bb", "a", "dddd"]  # the 4th is behind, unscored
    assert [h.ranks.get("rerank") for h in out] == [1, 2, 3, None]
    assert out[0].score == 3.0


async def test_rerank_rejects_bad_depth_and_a_short_score_list() -> None:
    class Short(ByLength):
        async def scores(self, query: str, passages: Sequence[str]) -> list[float]:
            return [1.0]

    with pytest.raises(ValueError, match="depth must be >= 1"):
        await rerank(ByLength(), "q", [hit("a")], depth=0)
    with pytest.raises(ValueError, match="1 scores for 2 passages"):
        await rerank(Short(), "q", [hit("a"), hit("b")], depth=2)


async def test_hybrid_reranks_the_fused_head_before_cutting_k() -> None:
    index = FixedIndex(["a", "b", "ccccc"], ["b", "dddd", "a"])
    reranker = ByLength()
    hits = await hybrid.search(
        index,
        None,
        "t",
        "the query",
        2,
        query_vector=VEC,
        audience=None,
        reranker=reranker,
        rerank_depth=4,
    )
    # fused order a, b, dddd, ccccc (all four scored); the reranker's two longest come first
    assert ids(hits) == ["ccccc", "dddd"]
    assert reranker.calls and reranker.calls[0][0] == "the query"
    assert sorted(reranker.calls[0][1]) == ["a", "b", "ccccc", "dddd"]
    assert set(hits[0].ranks) >= {"rerank"}
    plain = await hybrid.search(index, None, "t", "q", 2, query_vector=VEC, audience=None)
    assert ids(plain) == ["a", "b"]  # without a reranker: the fused order


def test_cross_encoder_directory_must_be_a_model(tmp_path: Path) -> None:
    from datatorag.embedding.rerank import CrossEncoderReranker

    with pytest.raises(DependencyError, match="not a model directory"):
        CrossEncoderReranker(tmp_path)


async def test_cross_encoder_loads_from_a_local_directory_and_scores_in_order() -> None:
    from datatorag.embedding.model_dir import resolve_model
    from datatorag.embedding.rerank import CrossEncoderReranker

    reranker = CrossEncoderReranker(resolve_model("minilm").path)
    try:
        passages = ["parental leave is sixteen weeks", "the kitchen is upstairs", "x"]
        first = await reranker.scores("how long is parental leave?", passages)
        again = await reranker.scores("how long is parental leave?", list(reversed(passages)))
        assert len(first) == 3 and all(isinstance(s, float) for s in first)
        assert again == pytest.approx(list(reversed(first)), abs=1e-5)  # per pair, order-free
        assert await reranker.scores("q", []) == []
    finally:
        await reranker.close()
