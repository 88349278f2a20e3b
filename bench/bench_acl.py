"""ACL-filtered k-NN: recall@10 of the audience-filtered index query against exact search, on a
tenant where the principal sees 10% of the documents.

    .venv/bin/python -m bench.bench_acl                      # 20,000 chunks; LanceDB (+ OpenSearch)
    .venv/bin/python -m bench.bench_acl --quick              # 5,000 chunks
    DATATORAG_TEST_OPENSEARCH_URL=http://127.0.0.1:9200 ...  # also on that OpenSearch node

* Corpus: N chunks of one tenant (plus as many of another tenant, which must never show up),
  384-d unit vectors drawn around 200 topic centres (so near neighbours exist, as with real
  embeddings, and the visible 10% are spread over every topic). 10% of the tenant's documents
  are ``hr``'s, the rest ``exec``'s; the principal is a reader of group ``hr``.
* Queries: 200, each a perturbed copy of a random chunk's vector of the tenant (visible or not).
* Baseline, in the same run: exact cosine top-10 over the visible chunks (numpy). recall@10 =
  |index top-10 ∩ exact top-10| / 10, averaged; also the share of queries with a full 10 hits
  (the audience inside the query: a post-filter would return ~1 visible hit in 10).
* LanceDB: the product's adapter with its IVF_FLAT index built (``optimize`` past
  ``ann_min_rows``), nprobes 20, the audience an ``array_has_any`` prefilter; a principal who
  sees at most ``exact_max_rows`` rows (50,000) gets an exact scan of those rows, one who sees
  more the IVF index probing nprobes / (visible share) partitions (``--exact-max-rows 0``
  measures that path). OpenSearch: HNSW (m 16, ef_construction 128, Lucene), the audience a
  ``terms`` filter inside the knn clause.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from bench._common import percentiles, target, write_result
from datatorag.adapters.embedded.lancedb_index import LanceDbIndex
from datatorag.config import OpenSearchSettings
from datatorag.domain.models import ChunkRecord
from datatorag.domain.principal import Principal
from datatorag.ports import VectorIndex

NAME = "acl"
DIM = 384
K = 10
TOPICS = 200
QUERIES = 200
VISIBLE_SHARE = 0.10
TARGET_RECALL = 0.95
TENANT, OTHER = "acme", "globex"
READER = Principal(TENANT, "bench", groups=frozenset({"hr"}))


def corpus(n: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """(vectors, visible mask) of ``n`` chunks: unit vectors around ``TOPICS`` centres."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((TOPICS, DIM))
    topic = rng.integers(0, TOPICS, n)
    vectors = centres[topic] + 0.9 * rng.standard_normal((n, DIM))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    visible = rng.random(n) < VISIBLE_SHARE
    return vectors.astype(np.float32), visible


def records(tenant: str, vectors: np.ndarray, visible: np.ndarray) -> list[ChunkRecord]:
    return [
        ChunkRecord(
            id=ChunkRecord.make_id(f"d{i}", "v1", 0), tenant=tenant, doc_id=f"d{i}", version="v1",
            chunk_index=0, text=f"chunk {i}", source="bench", path=f"d{i}.md",
            groups=("hr",) if visible[i] else ("exec",), vector=vectors[i].tolist(),
        )
        for i in range(len(vectors))
    ]  # fmt: skip


def queries(vectors: np.ndarray, seed: int = 11) -> np.ndarray:
    rng = np.random.default_rng(seed)
    picks = vectors[rng.integers(0, len(vectors), QUERIES)]
    q = picks + 0.3 * rng.standard_normal(picks.shape) / np.sqrt(DIM) * 10
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


def exact_top(vectors: np.ndarray, visible: np.ndarray, q: np.ndarray) -> list[set[str]]:
    ids = np.flatnonzero(visible)
    scores = q @ vectors[ids].T
    top = np.argsort(-scores, axis=1)[:, :K]
    return [{f"d{ids[j]}" for j in row} for row in top]


async def measure(index: VectorIndex, q: np.ndarray, truth: list[set[str]]) -> dict[str, Any]:
    audience = READER.audience()
    recalls, full, leaked, times = [], 0, 0, []
    for vector, expected in zip(q, truth, strict=True):
        started = time.perf_counter()
        hits = await index.knn(TENANT, vector.tolist(), K, audience=audience)
        times.append((time.perf_counter() - started) * 1000)
        got = {h.chunk.doc_id for h in hits}
        leaked += sum(1 for h in hits if h.chunk.tenant != TENANT or "hr" not in h.chunk.groups)
        full += len(hits) == K
        recalls.append(len(got & expected) / K)
    return {
        "recall_at_10": round(float(np.mean(recalls)), 4),
        "recall_at_10_min": round(float(np.min(recalls)), 2),
        "full_k_share": round(full / len(q), 4),
        "leaked_hits": leaked,
        "latency_ms": percentiles(times),
    }


async def fill(index: VectorIndex, vectors: np.ndarray, visible: np.ndarray) -> float:
    started = time.perf_counter()
    for tenant in (TENANT, OTHER):
        rows = records(tenant, vectors, visible if tenant == TENANT else ~visible)
        for i in range(0, len(rows), 2000):
            await index.upsert(rows[i : i + 2000])
    return time.perf_counter() - started


async def main_async(n: int, exact_max_rows: int, opensearch: bool) -> dict[str, Any]:
    vectors, visible = corpus(n)
    q = queries(vectors)
    truth = exact_top(vectors, visible, q)
    out: dict[str, Any] = {
        "chunks": n, "other_tenant_chunks": n, "visible_share": round(float(visible.mean()), 4),
        "queries": QUERIES, "k": K, "dim": DIM, "adapters": {},
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-acl-") as tmp:
        lance = LanceDbIndex(
            Path(tmp) / "db", dim=DIM, table="chunks_acl", ann_min_rows=1000,
            exact_max_rows=exact_max_rows,
        )  # fmt: skip
        try:
            took = await fill(lance, vectors, visible)
            await lance.optimize()  # builds the IVF index, as the indexer's writes trigger it
            result = await measure(lance, q, truth)
            how = (
                "exact scan of the visible rows" if visible.sum() <= exact_max_rows else "ivf_flat"
            )
            out["adapters"]["lancedb"] = {"load_s": round(took, 1), "path": how, **result}
        finally:
            await lance.close()
    url = os.environ.get("DATATORAG_TEST_OPENSEARCH_URL")
    if url and opensearch:
        from datatorag.adapters.opensearch import OpenSearchIndex

        settings = OpenSearchSettings(url=url, index_prefix=f"dtr-bench-acl-{uuid.uuid4().hex[:8]}")
        index = OpenSearchIndex(settings, model_id="bench-acl", dim=DIM, replicas=0)
        try:
            await index.ensure()
            took = await fill(index, vectors, visible)
            result = await measure(index, q, truth)
            out["adapters"]["opensearch"] = {
                "load_s": round(took, 1), "path": f"hnsw ({settings.engine})", **result,
            }  # fmt: skip
        finally:
            await index.drop()
            await index.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--chunks", type=int, default=None)
    ap.add_argument("--exact-max-rows", type=int, default=50_000)
    ap.add_argument("--no-opensearch", action="store_true")
    args = ap.parse_args()
    n = args.chunks or (5_000 if args.quick else 20_000)
    data = asyncio.run(main_async(n, args.exact_max_rows, not args.no_opensearch))
    data["exact_max_rows"] = args.exact_max_rows
    targets = {
        f"acl_knn_recall_at_10_{name} (10% visible)": target(
            f">= {TARGET_RECALL}",
            r["recall_at_10"],
            r["recall_at_10"] >= TARGET_RECALL and r["leaked_hits"] == 0,
        )
        for name, r in data["adapters"].items()
    }
    path = write_result(NAME, {**data, "targets": targets})
    for name, r in data["adapters"].items():
        print(
            f"{name}: recall@10 {r['recall_at_10']} (min {r['recall_at_10_min']}), "
            f"full k {r['full_k_share']:.0%}, leaked {r['leaked_hits']}, "
            f"p50 {r['latency_ms']['p50']} ms"
        )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
