"""Bulk indexing into OpenSearch: chunks/s through ``OpenSearchIndex.upsert`` vs a bare
``opensearchpy.helpers.async_bulk`` of the same records (same mapping, same node, same refresh).

    .venv/bin/python -m bench.bench_bulk_index            # 20k chunks, 384-d, 2 rounds
    .venv/bin/python -m bench.bench_bulk_index --quick    # 2k chunks, 1 round
    .venv/bin/python -m bench.bench_bulk_index --url http://127.0.0.1:9200

Without ``--url`` (or ``DATATORAG_TEST_OPENSEARCH_URL``) it starts its own node with
``scripts/opensearch.sh`` (512 MiB heap, Lucene HNSW) on a free port and stops it afterwards.

Measured paths, each into a fresh index created by the adapter's template:
* ``adapter``: one ``upsert`` of all records (validation, deterministic ids, orjson, 500-record
  bulk requests, 2 in flight, one refresh at the end).
* ``adapter_sequential``: the same with one bulk request in flight, like ``async_bulk``: the
  adapter's own overhead against the baseline.
* ``baseline``: a default ``AsyncOpenSearch`` client and ``helpers.async_bulk`` of plain dicts
  (``json`` serializer, float lists), then one refresh: what one writes without the adapter.
* ``adapter_per_document``: how the indexer calls it, one ``upsert`` per document (20 chunks)
  with its refresh, 4 documents in flight; shows the price of "searchable when upsert returns".
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
from opensearchpy import AsyncOpenSearch
from opensearchpy.helpers import async_bulk

from bench._common import target, write_result
from datatorag.adapters.opensearch import OpenSearchIndex
from datatorag.config import OpenSearchSettings
from datatorag.domain.models import ChunkRecord

NAME = "bulk_index"
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "opensearch.sh"
CHUNKS_PER_DOC = 20
PER_DOC_CONCURRENCY = 4
RATIO_TARGET = 0.9  # the adapter may cost at most 10% of bare async_bulk throughput
# fmt: off
_WORDS = [
    "policy", "employee", "vacation", "benefits", "payroll", "contract", "invoice", "revenue",
    "quarterly", "report", "manager", "approval", "travel", "expense", "laptop", "security",
    "access", "onboarding", "training", "review", "customer", "support", "incident", "release",
    "deployment", "budget", "forecast", "margin", "audit", "compliance",
]
# fmt: on


def make_records(n: int, dim: int, seed: int = 7) -> list[ChunkRecord]:
    """``n`` chunks of ~200 words (a 512-token chunk is ~1.5-2 KB of text) with unit vectors."""
    rng = np.random.default_rng(seed)
    pick = random.Random(seed)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    records = []
    for i in range(n):
        doc, chunk = divmod(i, CHUNKS_PER_DOC)
        records.append(
            ChunkRecord(
                id=ChunkRecord.make_id(f"doc-{doc}", "v1", chunk),
                tenant=f"tenant-{doc % 3}",
                doc_id=f"doc-{doc}",
                version="v1",
                chunk_index=chunk,
                text=" ".join(pick.choices(_WORDS, k=200)),
                title=f"Document {doc}",
                section=f"Section {chunk // 5}",
                page_start=chunk // 2 + 1,
                page_end=chunk // 2 + 1,
                source="bench",
                path=f"/bench/doc-{doc}.pdf",
                doc_type="pdf",
                vector=vectors[i].tolist(),
            )
        )
    return records


def _bare_action(index: str, r: ChunkRecord) -> dict[str, Any]:
    return {
        "_index": index,
        "_id": f"{r.tenant}:{r.id}",
        "_source": {
            "chunk_id": r.id,
            "tenant": r.tenant,
            "doc_id": r.doc_id,
            "version": r.version,
            "chunk_index": r.chunk_index,
            "text": r.text,
            "title": r.title,
            "section": r.section,
            "page_start": r.page_start,
            "page_end": r.page_end,
            "source": r.source,
            "path": r.path,
            "doc_type": r.doc_type,
            "updated_at": r.updated_at.isoformat(),
            "vector": r.vector,
        },
    }


class Node:
    """An OpenSearch URL: given, or a node of our own started with scripts/opensearch.sh."""

    def __init__(self, url: str | None) -> None:
        self.url = url
        self._run: tempfile.TemporaryDirectory[str] | None = None
        self._port = 0

    def __enter__(self) -> str:
        if self.url:
            return self.url
        self._run = tempfile.TemporaryDirectory(prefix="bench-opensearch-")
        for _attempt in range(3):  # a free port can be taken before the node binds it
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                self._port = s.getsockname()[1]
            out = subprocess.run(
                ["bash", str(SCRIPT), "start", self._run.name],
                env={**os.environ, "OPENSEARCH_PORT": str(self._port)},
                capture_output=True,
                text=True,
                check=False,
            )
            if out.returncode == 0 or "Address already in use" not in out.stderr:
                break
        if out.returncode != 0:
            raise SystemExit(f"could not start OpenSearch:\n{out.stderr[-3000:]}")
        self.url = out.stdout.strip().splitlines()[-1]
        return self.url

    def __exit__(self, *exc: object) -> None:
        if self._run is not None:
            subprocess.run(
                ["bash", str(SCRIPT), "stop", self._run.name],
                env={**os.environ, "OPENSEARCH_PORT": str(self._port)},
                capture_output=True,
                check=False,
            )
            self._run.cleanup()


async def _fresh_index(url: str, dim: int, tag: str) -> OpenSearchIndex:
    settings = OpenSearchSettings(url=url, index_prefix=f"bench-bulk-{tag}-{uuid.uuid4().hex[:6]}")
    concurrency = 1 if tag == "adapter_sequential" else 2
    index = OpenSearchIndex(
        settings, model_id="all-MiniLM-L6-v2", dim=dim, replicas=0, bulk_concurrency=concurrency
    )
    await index.ensure()
    return index


async def _timed(
    url: str, dim: int, tag: str, n: int, run: Callable[[OpenSearchIndex], Awaitable[None]]
) -> float:
    """chunks/s of ``run`` into a fresh index; checks every record landed, then drops it."""
    index = await _fresh_index(url, dim, tag)
    try:
        start = time.perf_counter()
        await run(index)
        elapsed = time.perf_counter() - start
        count = await index.count()
        if count != n:
            raise SystemExit(f"{tag}: {count} documents indexed, expected {n}")
        return n / elapsed
    finally:
        await index.drop()
        await index.close()


async def measure(url: str, records: list[ChunkRecord], dim: int, rounds: int) -> dict[str, Any]:
    n = len(records)
    bare = AsyncOpenSearch(hosts=[url], timeout=120)

    async def adapter(index: OpenSearchIndex) -> None:
        await index.upsert(records)

    async def baseline(index: OpenSearchIndex) -> None:
        await async_bulk(bare, (_bare_action(index.alias, r) for r in records), chunk_size=500)
        await bare.indices.refresh(index=index.alias)

    per_doc_records = records[: min(n, 4000)]

    async def per_document(index: OpenSearchIndex) -> None:
        docs = [
            per_doc_records[i : i + CHUNKS_PER_DOC]
            for i in range(0, len(per_doc_records), CHUNKS_PER_DOC)
        ]
        gate = asyncio.Semaphore(PER_DOC_CONCURRENCY)

        async def one(doc: list[ChunkRecord]) -> None:
            async with gate:
                await index.upsert(doc)

        await asyncio.gather(*(one(d) for d in docs))

    try:
        # warm the JVM (JIT, HNSW code paths) so neither measured path pays for it
        await _timed(url, dim, "warmup", min(n, 2000), lambda ix: ix.upsert(records[:2000]))
        results: dict[str, list[float]] = {
            "adapter": [],
            "adapter_sequential": [],
            "baseline": [],
        }
        for r in range(rounds):
            order = [("adapter", adapter), ("adapter_sequential", adapter), ("baseline", baseline)]
            if r % 2:
                order.reverse()  # alternate, so drift on a busy machine hits both
            for tag, fn in order:
                rate = await _timed(url, dim, tag, n, fn)
                results[tag].append(rate)
                print(f"  round {r + 1} {tag:18s} {rate:8.0f} chunks/s")
        per_doc = await _timed(url, dim, "per-doc", len(per_doc_records), per_document)
        print(f"  per-document upserts ({len(per_doc_records)} chunks) {per_doc:8.0f} chunks/s")
    finally:
        await bare.close()
    return {
        "adapter": max(results["adapter"]),
        "adapter_sequential": max(results["adapter_sequential"]),
        "baseline": max(results["baseline"]),
        "adapter_rounds": results["adapter"],
        "adapter_sequential_rounds": results["adapter_sequential"],
        "baseline_rounds": results["baseline"],
        "per_document": per_doc,
        "per_document_chunks": len(per_doc_records),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2k chunks, one round")
    parser.add_argument("--n", type=int, default=None, help="chunks (default 20000; quick 2000)")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--url", default=os.environ.get("DATATORAG_TEST_OPENSEARCH_URL"))
    args = parser.parse_args()
    n = args.n or (2000 if args.quick else 20_000)
    rounds = args.rounds or (1 if args.quick else 2)

    records = make_records(n, args.dim)
    own_node = not args.url
    with Node(args.url) as url:
        print(f"bulk indexing {n} chunks of dim {args.dim} into {url}")
        got = asyncio.run(measure(url, records, args.dim, rounds))

    ratio = got["adapter"] / got["baseline"]
    ratio_seq = got["adapter_sequential"] / got["baseline"]
    print(
        f"adapter {got['adapter']:.0f} chunks/s (sequential {got['adapter_sequential']:.0f}), "
        f"bare async_bulk {got['baseline']:.0f} chunks/s: ratio {ratio:.2f} "
        f"(sequential {ratio_seq:.2f}); per-document upserts {got['per_document']:.0f} chunks/s"
    )
    path = write_result(
        NAME,
        {
            "params": {
                "chunks": n,
                "dim": args.dim,
                "rounds": rounds,
                "bulk_chunk_size": 500,
                "engine": "lucene",
                "node": "own, scripts/opensearch.sh, 512 MiB heap" if own_node else url,
                "quick": args.quick,
            },
            "metrics": {
                "adapter_chunks_per_s": round(got["adapter"], 1),
                "adapter_rounds_chunks_per_s": [round(x, 1) for x in got["adapter_rounds"]],
                "adapter_sequential_chunks_per_s": round(got["adapter_sequential"], 1),
                "adapter_sequential_rounds_chunks_per_s": [
                    round(x, 1) for x in got["adapter_sequential_rounds"]
                ],
                "adapter_per_document_chunks_per_s": round(got["per_document"], 1),
                "per_document_chunks": got["per_document_chunks"],
                "per_document_concurrency": PER_DOC_CONCURRENCY,
            },
            "baseline": {
                "bare_async_bulk_chunks_per_s": round(got["baseline"], 1),
                "rounds_chunks_per_s": [round(x, 1) for x in got["baseline_rounds"]],
            },
            "ratios": {
                "adapter_vs_bare_async_bulk": round(ratio, 3),
                "adapter_sequential_vs_bare_async_bulk": round(ratio_seq, 3),
            },
            "targets": {
                "adapter_sequential_vs_bare_async_bulk": target(
                    f">= {RATIO_TARGET}", round(ratio_seq, 3), ratio_seq >= RATIO_TARGET
                ),
                "adapter_vs_bare_async_bulk": target(
                    f">= {RATIO_TARGET}", round(ratio, 3), ratio >= RATIO_TARGET
                ),
            },
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
