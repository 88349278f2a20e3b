"""Hybrid retrieval: k-NN and BM25 run concurrently, fused by reciprocal rank fusion.

Works with any ``VectorIndex`` adapter; the tenant, the principal's audience and the filters are
passed into each index query (the adapters apply them inside the query, never as a post-filter).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Coroutine, Mapping, Sequence
from enum import StrEnum
from typing import Any

from prometheus_client import Histogram

from datatorag.domain.errors import DependencyError
from datatorag.domain.models import SearchFilters, SearchHit
from datatorag.ports import Embedder, Reranker, VectorIndex
from datatorag.retrieval.rerank import rerank
from datatorag.retrieval.rrf import rrf_fuse

# The product's fusion defaults, chosen on the dev half of 202 held-out questions over two real
# handbooks (bench/bench_handbooks.py; the test half is reported in BENCHMARKS.md) among the
# settings where hybrid is never worse than its better leg on dev. A small k sharpens the weight
# of top ranks; k-NN leads because the embedding model out-ranks BM25 on paraphrased questions,
# while BM25 still lifts exact-term matches (names, numbers) within each leg's top candidates.
HYBRID_RRF_K = 5
HYBRID_WEIGHTS: dict[str, float] = {"knn": 5.0, "bm25": 1.0}

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
RETRIEVAL_SECONDS = Histogram(
    "datatorag_retrieval_seconds",
    "Retrieval time per query (embedding + index queries + fusion), by mode",
    ["mode"],
    buckets=_BUCKETS,
)
RETRIEVER_SECONDS = Histogram(
    "datatorag_retriever_seconds",
    "Time of one index query, by retriever (knn, bm25)",
    ["retriever"],
    buckets=_BUCKETS,
)
QUERY_EMBED_SECONDS = Histogram(
    "datatorag_query_embed_seconds", "Query embedding time", buckets=_BUCKETS
)


_UNLIMITED = contextlib.nullcontext()


class Mode(StrEnum):
    HYBRID = "hybrid"
    KNN = "knn"
    BM25 = "bm25"


def default_candidates(k: int) -> int:
    """How many hits each retriever contributes to the fusion: its top ``k`` (at least 10).
    Deeper lists (20, 50) let chunks that both legs rank low outvote a leg's clear top hit; on
    the dev questions the top 10 fused best (BENCHMARKS.md)."""
    return max(10, k)


async def embed_query(embedder: Embedder, query: str, dim: int | None = None) -> list[float]:
    started = time.perf_counter()
    vectors = await embedder.embed_queries([query])
    QUERY_EMBED_SECONDS.observe(time.perf_counter() - started)
    if vectors.ndim != 2 or vectors.shape[0] != 1:
        raise DependencyError("embedder", f"expected one query vector, got shape {vectors.shape}")
    if dim is not None and vectors.shape[1] != dim:
        raise DependencyError(
            "embedder",
            f"query vector has {vectors.shape[1]} dimensions but the index holds {dim}; "
            "the index was built with another model",
        )
    vector: list[float] = vectors[0].tolist()
    return vector


async def search(
    index: VectorIndex,
    embedder: Embedder | None,
    tenant: str,
    query: str,
    k: int,
    filters: SearchFilters | None = None,
    mode: Mode | str = Mode.HYBRID,
    candidates: int | None = None,
    *,
    audience: frozenset[str] | None,
    query_vector: Sequence[float] | None = None,
    rrf_k: int = HYBRID_RRF_K,
    weights: Mapping[str, float] | None = None,
    limiter: asyncio.Semaphore | None = None,
    reranker: Reranker | None = None,
    rerank_depth: int = 20,
) -> list[SearchHit]:
    """Top ``k`` chunks of ``tenant`` visible to ``audience`` for ``query``.

    ``audience`` is required (no default): a principal's ``audience()``, ``None`` only for one
    who may see every document of the tenant (an admin, an evaluation harness).

    ``mode``: ``hybrid`` (k-NN and BM25 concurrently, ``candidates`` each, fused by RRF on chunk
    id), ``knn`` or ``bm25`` alone (their own scores). Every hit's ``ranks`` holds its 1-based rank
    per retriever. ``query_vector`` skips embedding (benchmarks, callers that embedded already).
    ``limiter`` bounds how many index queries run at once (each retriever call takes a slot):
    an embedded index thrashes under 100 concurrent scans, a queue in front of it does not.
    ``reranker`` (hybrid only) reorders the top ``rerank_depth`` fused hits before the top
    ``k`` are cut (their rank in it is ``ranks["rerank"]``).
    """
    mode = Mode(mode)
    if not tenant:
        raise ValueError("tenant is required")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if candidates is None:
        candidates = default_candidates(k)
    if candidates < k:
        raise ValueError(f"candidates ({candidates}) must be >= k ({k})")
    if mode is not Mode.BM25 and embedder is None and query_vector is None:
        raise ValueError(f"mode {mode.value} needs an embedder or a query_vector")
    dim = getattr(index, "dim", None)

    async def knn(n: int) -> list[SearchHit]:
        vector = (
            list(query_vector)
            if query_vector is not None
            else await embed_query(embedder, query, dim)  # type: ignore[arg-type]
        )
        async with limiter or _UNLIMITED:
            started = time.perf_counter()
            hits = await index.knn(tenant, vector, n, filters, audience=audience)
        RETRIEVER_SECONDS.labels("knn").observe(time.perf_counter() - started)
        return hits

    async def bm25(n: int) -> list[SearchHit]:
        async with limiter or _UNLIMITED:
            started = time.perf_counter()
            hits = await index.bm25(tenant, query, n, filters, audience=audience)
        RETRIEVER_SECONDS.labels("bm25").observe(time.perf_counter() - started)
        return hits

    started = time.perf_counter()
    try:
        if mode is Mode.KNN:
            return _ranked("knn", (await knn(k))[:k])
        if mode is Mode.BM25:
            return _ranked("bm25", (await bm25(k))[:k])
        knn_hits, bm25_hits = await _concurrently(knn(candidates), bm25(candidates))
        fused = rrf_fuse(
            {"knn": knn_hits, "bm25": bm25_hits},
            k=rrf_k,
            weights=HYBRID_WEIGHTS if weights is None else weights,
            limit=k if reranker is None else max(k, rerank_depth),
        )
        if reranker is None:
            return fused
        return (await rerank(reranker, query, fused, rerank_depth))[:k]
    finally:
        RETRIEVAL_SECONDS.labels(mode.value).observe(time.perf_counter() - started)


async def _concurrently(
    a: Coroutine[Any, Any, list[SearchHit]], b: Coroutine[Any, Any, list[SearchHit]]
) -> tuple[list[SearchHit], list[SearchHit]]:
    """Run both; if one fails the other is cancelled (TaskGroup) and the caller sees the first
    real error rather than an ExceptionGroup."""
    try:
        async with asyncio.TaskGroup() as tg:
            ta = tg.create_task(a)
            tb = tg.create_task(b)
    except BaseExceptionGroup as group:
        raise _first(group) from None
    return ta.result(), tb.result()


def _first(group: BaseExceptionGroup) -> BaseException:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def _ranked(name: str, hits: list[SearchHit]) -> list[SearchHit]:
    return [
        hit.model_copy(update={"ranks": {name: position}})
        for position, hit in enumerate(hits, start=1)
    ]
