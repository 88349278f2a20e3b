"""Vector stores side by side and the scale curve: our embedded store (LanceDB) and OpenSearch
through our adapters, ChromaDB (the RAG-Explorer plan's local store) in the peers' venv.

The same vectors for every store (``bench_query.chunk_vectors``: clustered like real embeddings,
384-d, 10% of rows another tenant), the same texts, the same queries. Each store is built and
queried in its own process, one query at a time, k=10, filtered to one tenant; the parent compares
the ids found with an exact numpy search. Reported per store and size: k-NN p50/p95, recall@10,
build time (insert until queryable, indexes included), disk, and memory (the process' peak RSS;
for OpenSearch, the node's heap).

    .venv/bin/python -m bench.bench_stores [--quick] [--sizes 10000,100000] [--million]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench._common import percentiles, target, write_result
from bench.bench_query import (
    DIM,
    PER_DOC,
    TENANT,
    chunk_vectors,
    make_queries,
    tenant_of,
    vocabulary,
    zipf_texts,
)

REPO = Path(__file__).resolve().parent.parent
DATA_ROOT = Path(os.environ.get("DATATORAG_BENCH_DATA", ".bench/data"))
K = 10
QUERIES = 200
WORDS = 40  # per chunk: the text travels with every store, like a real chunk's
OS_PREFIX = "datatorag-benchstores"


def load_avg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def prepare(n: int) -> Path:
    """Vectors, tenants, texts and queries as files every process (and venv) reads."""
    d = DATA_ROOT / f"stores-{n}"
    if (d / "queries.npy").is_file():
        return d
    d.mkdir(parents=True, exist_ok=True)
    vectors = chunk_vectors(n)
    np.save(d / "vectors.npy", vectors)
    tenants = [str(t) for t in tenant_of(np.arange(n))]
    (d / "tenants.json").write_text(json.dumps(tenants))
    (d / "texts.json").write_text(
        json.dumps(zipf_texts(np.random.default_rng(1), vocabulary(), n, WORDS))
    )
    _, queries = make_queries(vocabulary(), QUERIES, vectors)
    np.save(d / "queries.npy", queries)
    return d


def exact_ids(data: Path) -> list[set[int]]:
    vectors = np.load(data / "vectors.npy")
    queries = np.load(data / "queries.npy")
    mine = np.asarray(json.loads((data / "tenants.json").read_text())) == TENANT
    out = []
    for q in queries:
        s = vectors @ q
        s[~mine] = -np.inf
        out.append({int(i) for i in np.argpartition(-s, K)[:K]})
    return out


def disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


# ------------------------------------------------------------------------- our stores (worker)


async def ours(kind: str, data: Path, store: Path, opensearch_url: str) -> dict[str, Any]:
    from datatorag.config import Mode, OpenSearchSettings, Settings
    from datatorag.domain.models import ChunkRecord

    vectors = np.load(data / "vectors.npy")
    tenants = json.loads((data / "tenants.json").read_text())
    texts = json.loads((data / "texts.json").read_text())
    queries = np.load(data / "queries.npy")
    n = len(vectors)
    shutil.rmtree(store, ignore_errors=True)
    store.mkdir(parents=True)  # noqa: ASYNC240 - a bench worker, nothing else on its loop
    if kind == "opensearch":
        from datatorag.adapters.opensearch.index import OpenSearchIndex

        prefix = f"{OS_PREFIX}-{n}"
        settings = Settings(
            mode=Mode.PRODUCTION,
            data_dir=store,
            opensearch=OpenSearchSettings(url=opensearch_url, index_prefix=prefix),
        )
        index: Any = OpenSearchIndex.from_settings(settings, model_id="bench", dim=DIM)
    else:
        from datatorag.bootstrap.factory import make_vector_index

        index = make_vector_index(Settings(data_dir=store), model_id="bench", dim=DIM)
    started = time.perf_counter()
    await index.ensure()
    for lo in range(0, n, 5000):
        records = []
        for i in range(lo, min(lo + 5000, n)):
            doc, c = divmod(i, PER_DOC)
            records.append(
                ChunkRecord(
                    id=f"doc{doc}:v1:{c}",
                    tenant=tenants[i],
                    doc_id=f"doc{doc}",
                    version="v1",
                    chunk_index=c,
                    text=texts[i],
                    title=f"Document {doc}",
                    page_start=1,
                    page_end=1,
                    source="s",
                    path=f"docs/doc{doc}.pdf",
                    doc_type="pdf",
                    vector=vectors[i].tolist(),
                )
            )
        await index.upsert(records)
    if hasattr(index, "optimize"):
        await index.optimize()
    if hasattr(index, "refresh"):
        await index.refresh()
    build_s = time.perf_counter() - started

    def row(chunk_id: str) -> int:
        doc, _, c = chunk_id.split(":")
        return int(doc.removeprefix("doc")) * PER_DOC + int(c)

    for q in queries[:20]:
        await index.knn(TENANT, q, K)
    latencies, found = [], []
    for q in queries:
        t0 = time.perf_counter()
        hits = await index.knn(TENANT, q, K)
        latencies.append((time.perf_counter() - t0) * 1000)
        found.append([row(h.chunk.id) for h in hits])
    out: dict[str, Any] = {
        "store": kind,
        "build_s": round(build_s, 2),
        "rss_peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "latencies_ms": latencies,
        "ids": found,
    }
    if kind == "opensearch":
        client = index.client
        stats = await client.indices.stats(index=index.target, metric="store")
        out["disk_bytes"] = int(stats["_all"]["primaries"]["store"]["size_in_bytes"])
        nodes = await client.nodes.stats(metric="jvm")
        heap = [v["jvm"]["mem"] for v in nodes["nodes"].values()]
        out["node_heap_used_mb"] = round(sum(h["heap_used_in_bytes"] for h in heap) / 2**20, 1)
        out["node_heap_max_mb"] = round(sum(h["heap_max_in_bytes"] for h in heap) / 2**20, 1)
        await index.drop()  # our own index, never anyone else's
    else:
        out["disk_bytes"] = disk_bytes(store)
    await index.close()
    if kind != "opensearch":
        shutil.rmtree(store, ignore_errors=True)
    return out


def run_ours(kind: str, data: Path, store: Path, url: str) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.bench_stores", "--worker", kind, "--data", str(data)]
    cmd += ["--store", str(store), "--opensearch-url", url]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=3600, check=False)
    if out.returncode:
        raise RuntimeError(f"{kind} worker failed:\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def summarise(raw: dict[str, Any], exact: list[set[int]]) -> dict[str, Any]:
    recall = sum(len(set(f) & e) for f, e in zip(raw.pop("ids"), exact, strict=True)) / (
        K * len(exact)
    )
    lat = percentiles(raw.pop("latencies_ms"))
    return {
        **raw,
        "knn_ms": lat,
        "recall@10": round(recall, 4),
        "disk_mb": round(raw["disk_bytes"] / 2**20, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="10k only")
    ap.add_argument("--sizes", default=None, help="comma-separated chunk counts")
    ap.add_argument("--million", action="store_true", help="also 1M chunks, LanceDB only")
    ap.add_argument("--stores", default="lancedb,chroma,opensearch")
    ap.add_argument(
        "--opensearch-url",
        default=os.environ.get("DATATORAG_TEST_OPENSEARCH_URL", "http://127.0.0.1:9200"),
    )
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--data", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--store", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        from datatorag.runtime import run_service

        result: dict[str, Any] = {}

        async def work() -> None:
            result.update(
                await ours(args.worker, Path(args.data), Path(args.store), args.opensearch_url)
            )

        run_service(work())
        print(json.dumps(result))
        return

    from bench._peers import run_peer

    sizes = [int(x) for x in (args.sizes or ("10000" if args.quick else "10000,100000")).split(",")]
    stores = args.stores.split(",")
    plan = [(n, s) for n in sizes for s in stores]
    if args.million:
        plan.append((1_000_000, "lancedb"))
    results: dict[str, dict[str, Any]] = {}
    for n, store in plan:
        data = prepare(n)
        exact = exact_ids(data)
        place = DATA_ROOT / f"stores-{n}-{store}"
        print(f"== {store} at {n} chunks (load {load_avg()})", flush=True)
        try:
            if store == "chroma":
                raw = run_peer("chroma_store.py", "--data", str(data), "--store", str(place))
                shutil.rmtree(place, ignore_errors=True)
            else:
                raw = run_ours(store, data, place, args.opensearch_url)
        except Exception as exc:  # noqa: BLE001 - one store failing must not hide the others
            print(f"   failed: {exc}", flush=True)
            results[f"{store}@{n}"] = {"error": str(exc)[-500:]}
            continue
        r = summarise(raw, exact)
        r["load_avg"] = load_avg()
        results[f"{store}@{n}"] = r
        print(
            f"   build {r['build_s']} s, disk {r['disk_mb']} MiB, peak RSS {r['rss_peak_mb']} MiB, "
            f"k-NN p50 {r['knn_ms']['p50']} ms p95 {r['knn_ms']['p95']} ms, "
            f"recall@10 {r['recall@10']}",
            flush=True,
        )

        _write(args, sizes, stores, results)  # after every store: a later one may not finish

    _write(args, sizes, stores, results)


def _write(
    args: argparse.Namespace, sizes: list[int], stores: list[str], results: dict[str, Any]
) -> None:
    plan = [(int(k.split("@")[1]), k.split("@")[0]) for k in results]
    targets: dict[str, Any] = {}
    ratios: dict[str, Any] = {}
    for n in sizes:
        ours_r, chroma = results.get(f"lancedb@{n}", {}), results.get(f"chroma@{n}", {})
        if "knn_ms" in ours_r and "knn_ms" in chroma:
            ratio = chroma["knn_ms"]["p95"] / ours_r["knn_ms"]["p95"]
            ratios[f"chroma_p95_over_ours_{n}"] = round(ratio, 2)
            ratios[f"chroma_build_over_ours_{n}"] = round(chroma["build_s"] / ours_r["build_s"], 2)
            ratios[f"chroma_disk_over_ours_{n}"] = round(chroma["disk_mb"] / ours_r["disk_mb"], 2)
            if n == 100_000 or len(sizes) == 1:
                ok = ratio >= 2.0 and ours_r["recall@10"] >= chroma["recall@10"]
                targets[f"embedded store vs ChromaDB at {n}: p95 lower, recall >= Chroma's"] = (
                    target(
                        ">= 2.0x at equal or better recall",
                        f"{ratio:.2f}x (recall {ours_r['recall@10']} vs {chroma['recall@10']})",
                        ok,
                    )
                )
    # the scale curve: how each cost grows per 10x chunks
    growth: dict[str, Any] = {}
    for store in {s for _, s in plan}:
        pts = sorted(
            (n, results[f"{store}@{n}"])
            for n, s in plan
            if s == store and "knn_ms" in results[f"{store}@{n}"]
        )
        for (n0, a), (n1, b) in itertools.pairwise(pts):
            growth[f"{store} {n0}->{n1}"] = {
                "p95": round(b["knn_ms"]["p95"] / a["knn_ms"]["p95"], 2),
                "build": round(b["build_s"] / a["build_s"], 2),
                "disk": round(b["disk_mb"] / a["disk_mb"], 2),
            }
    path = write_result(
        "stores",
        {
            "config": {
                "k": K,
                "queries": QUERIES,
                "dim": DIM,
                "words_per_chunk": WORDS,
                "sizes": sizes,
                "stores": stores,
                "million": args.million,
            },
            "metrics": results,
            "ratios": ratios,
            "growth_per_step": growth,
            "targets": targets,
        },
    )
    if len(results) == len(sizes) * len(stores) + bool(args.million):
        for key, t in targets.items():
            met = "met" if t["met"] else "NOT met"
            print(f"target {key}: {t['actual']} vs {t['target']} -> {met}")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
