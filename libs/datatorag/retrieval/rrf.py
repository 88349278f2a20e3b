"""Reciprocal rank fusion: the one place ranked lists from different retrievers are combined.

RRF (Cormack, Clarke & Büttcher, 2009) scores a document ``sum_r w_r / (k + rank_r)`` over the
retrievers ``r`` that returned it. It needs only ranks, so it fuses cosine similarities and BM25
scores (incomparable scales) without normalisation, and behaves the same for every VectorIndex
adapter (LanceDB, OpenSearch, ...).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from datatorag.domain.models import SearchHit

DEFAULT_RRF_K = 60  # the constant of the original paper; the product's own is in hybrid.py


def rrf_fuse(
    ranked: Mapping[str, Sequence[SearchHit]],
    *,
    k: int = DEFAULT_RRF_K,
    weights: Mapping[str, float] | None = None,
    limit: int | None = None,
) -> list[SearchHit]:
    """Fuse best-first hit lists keyed by retriever name (``{"knn": [...], "bm25": [...]}``).

    Hits are identified by ``chunk.id``. Each fused hit carries the RRF score and, in ``ranks``,
    its 1-based rank in every retriever that returned it. A retriever missing from ``weights``
    weighs 1. Ties are broken by the best single rank, then by chunk id, so the order is
    deterministic.
    """
    if k < 1:
        raise ValueError(f"RRF k must be >= 1, got {k}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    weights = dict(weights or {})
    unknown = set(weights) - set(ranked)
    if unknown:
        raise ValueError(f"weights for unknown retrievers: {sorted(unknown)}")
    if any(w < 0 for w in weights.values()):
        raise ValueError("RRF weights must be >= 0")

    scores: dict[str, float] = {}
    first: dict[str, SearchHit] = {}
    ranks: dict[str, dict[str, int]] = {}
    for name, hits in ranked.items():
        weight = weights.get(name, 1.0)
        seen: set[str] = set()
        for position, hit in enumerate(hits, start=1):
            cid = hit.chunk.id
            if cid in seen:  # a retriever listing a chunk twice counts its best rank only
                continue
            seen.add(cid)
            scores[cid] = scores.get(cid, 0.0) + weight / (k + position)
            first.setdefault(cid, hit)
            ranks.setdefault(cid, {})[name] = position

    def order(cid: str) -> tuple[float, int, str]:
        return (-scores[cid], min(ranks[cid].values()), cid)

    ordered = sorted(scores, key=order)
    return [  # only the hits returned are built
        SearchHit(chunk=first[cid].chunk, score=scores[cid], ranks=ranks[cid])
        for cid in (ordered if limit is None else ordered[:limit])
    ]
