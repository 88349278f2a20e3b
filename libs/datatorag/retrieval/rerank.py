"""Reranking the head of a fused hit list with a ``Reranker`` (a cross-encoder reads query and
passage together, which a bi-encoder's k-NN cannot): the top ``depth`` hits are reordered by
its scores, the rest keep their order behind them."""

from __future__ import annotations

from collections.abc import Sequence

from datatorag.domain.models import SearchHit
from datatorag.ports.reranker import Reranker


async def rerank(
    reranker: Reranker, query: str, hits: Sequence[SearchHit], depth: int
) -> list[SearchHit]:
    if depth < 1:
        raise ValueError(f"rerank depth must be >= 1, got {depth}")
    head, tail = list(hits[:depth]), list(hits[depth:])
    scores = await reranker.scores(query, [h.chunk.text for h in head])
    if len(scores) != len(head):
        raise ValueError(f"reranker returned {len(scores)} scores for {len(head)} passages")
    order = sorted(range(len(head)), key=lambda i: (-scores[i], i))  # stable on ties
    reranked = [
        head[i].model_copy(update={"score": scores[i], "ranks": {**head[i].ranks, "rerank": n}})
        for n, i in enumerate(order, start=1)
    ]
    return reranked + tail
