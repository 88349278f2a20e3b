"""The ChromaDB side of bench/bench_stores.py, run in the peers' venv (bench/peers/venv.sh).

Reads the vectors, tenants, texts and queries the bench wrote (.npy / .json), builds a persistent
Chroma collection (HNSW, cosine), times tenant-filtered k-NN queries one at a time, and prints one
JSON object: build time, disk, peak RSS, per-query latencies and the row ids found.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import time
from pathlib import Path

import chromadb
import numpy as np


def disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, help="directory with vectors.npy etc.")
    ap.add_argument("--store", required=True, help="where the Chroma database goes (emptied)")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--tenant", default="bench")
    args = ap.parse_args()
    data = Path(args.data)
    vectors = np.load(data / "vectors.npy")
    tenants = json.loads((data / "tenants.json").read_text())
    texts = json.loads((data / "texts.json").read_text())
    queries = np.load(data / "queries.npy")
    store = Path(args.store)
    shutil.rmtree(store, ignore_errors=True)

    started = time.perf_counter()
    client = chromadb.PersistentClient(path=str(store))
    col = client.create_collection("bench", metadata={"hnsw:space": "cosine"})
    step = min(5000, client.get_max_batch_size())
    for lo in range(0, len(vectors), step):
        hi = min(lo + step, len(vectors))
        col.add(
            ids=[str(i) for i in range(lo, hi)],
            embeddings=vectors[lo:hi],
            metadatas=[{"tenant": tenants[i]} for i in range(lo, hi)],
            documents=texts[lo:hi],
        )
    build_s = time.perf_counter() - started

    where = {"tenant": args.tenant}
    for q in queries[:20]:  # warm-up
        col.query(query_embeddings=[q], n_results=args.k, where=where, include=[])
    latencies, found = [], []
    for q in queries:
        t0 = time.perf_counter()
        res = col.query(query_embeddings=[q], n_results=args.k, where=where, include=[])
        latencies.append((time.perf_counter() - t0) * 1000)
        found.append([int(x) for x in res["ids"][0]])
    print(
        json.dumps(
            {
                "store": f"chromadb {chromadb.__version__}",
                "build_s": round(build_s, 2),
                "disk_bytes": disk_bytes(store),
                "rss_peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "latencies_ms": latencies,
                "ids": found,
                "pid": os.getpid(),
            }
        )
    )


if __name__ == "__main__":
    main()
