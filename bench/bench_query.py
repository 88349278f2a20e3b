"""Query latency and throughput: the gateway over real HTTP against the bare index query.

Builds (once, cached under ``.bench/data``) a store of synthetic chunks: 384-d unit vectors with
the topic structure of real embeddings (see ``chunk_vectors``) and text drawn (Zipf) from the
vocabulary of the shared handbook corpus. It reports the k-NN recall of the store against an exact
numpy search of the same vectors, then, at 1, 10 and 100 concurrent clients:

* **gateway**: ``POST /v1/search`` (hybrid, k=10) to a uvicorn process on 127.0.0.1, from
  aiohttp; measured with *precomputed* query vectors (an embedder that looks the
  vector up) and with the *real* MiniLM query embedding in the gateway process.
* **bare** (baseline): the same k-NN and BM25 queries (50 candidates each, concurrently, as the
  hybrid search issues them) straight on the adapter, in this process.

    .venv/bin/python -m bench.bench_query [--quick] [--index opensearch --opensearch-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench._common import percentiles, target, write_result

# Lance logs a warning per skipped empty IVF partition while optimize() folds rows in; keep the
# output readable (the gateway child inherits this).
os.environ.setdefault("LANCEDB_LOG", "error")

DIM = 384
TENANT = "bench"
OTHER_TENANT = "other"  # 10% of rows: the tenant filter has something to exclude
API_KEY = "bench-key"
K = 10
CANDIDATES = 50  # what hybrid.search asks each retriever for at k=10
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpora"
DATA_ROOT = Path(os.environ.get("DATATORAG_BENCH_DATA", ".bench/data"))
MODEL_ID = "bench-random"


# ---------------------------------------------------------------------------- synthetic data


def vocabulary() -> list[str]:
    """Words of the shared corpus, most frequent first (a synthetic list if it is absent)."""
    counts: Counter[str] = Counter()
    for path in sorted(CORPUS.rglob("*.md")):
        counts.update(re.findall(r"[a-z]{2,}", path.read_text(errors="ignore").lower()))
    if len(counts) < 500:
        rng = np.random.default_rng(7)
        syll = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "pa", "do", "fi"]
        return ["".join(rng.choice(syll, size=rng.integers(2, 5))) for _ in range(5000)]
    return [w for w, _ in counts.most_common()]


def unit_vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM), dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v


PER_DOC = 20  # chunks per synthetic document
DOCS_PER_THEME = 25


def chunk_vectors(n: int, seed: int = 1) -> np.ndarray:
    """Chunk vectors shaped like real embeddings rather than uniform noise.

    Uniform random unit vectors are the worst case for any ANN index (in 384-d every point is
    about equally far from every other) and no embedding model produces them. Here a chunk is
    ``0.5 * theme + 0.5 * document + 0.71 * noise``: chunks of one document have cosine ~0.5,
    of one theme (25 documents) ~0.25, unrelated ones ~0 - the spread seen between a corpus'
    passages with MiniLM-class models. Deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    docs = -(-n // PER_DOC)
    themes = unit_vectors(rng, -(-docs // DOCS_PER_THEME))
    doc_vectors = unit_vectors(rng, docs)
    doc_of = np.arange(n) // PER_DOC
    v = 0.5 * themes[doc_of // DOCS_PER_THEME] + 0.5 * doc_vectors[doc_of]
    v += np.float32(np.sqrt(0.5)) * unit_vectors(rng, n)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v.astype(np.float32)


def tenant_of(i: np.ndarray | int) -> np.ndarray | str:
    """Every tenth document belongs to the other tenant."""
    other = (np.asarray(i) // PER_DOC) % 10 == 9
    return (
        np.where(other, OTHER_TENANT, TENANT) if other.ndim else (OTHER_TENANT if other else TENANT)
    )


def zipf_texts(rng: np.random.Generator, vocab: list[str], n: int, words: int) -> list[str]:
    ranks = np.arange(1, len(vocab) + 1)
    p = 1.0 / ranks
    p /= p.sum()
    idx = rng.choice(len(vocab), size=(n, words), p=p)
    arr = np.asarray(vocab, dtype=object)
    return [" ".join(arr[row]) for row in idx]


def make_queries(
    vocab: list[str], n: int, chunks: np.ndarray, seed: int = 11
) -> tuple[list[str], np.ndarray]:
    """Text: 2-5 words from the middle of the frequency range (not stop words, not hapaxes).
    Vector: a paraphrase of one of the tenant's chunks (cosine ~0.7 to it), as a question is to
    the passage that answers it."""
    rng = np.random.default_rng(seed)
    lo, hi = min(100, len(vocab) // 10), min(3000, len(vocab))
    queries = [
        " ".join(rng.choice(vocab[lo:hi], size=int(rng.integers(2, 6)), replace=False))
        for _ in range(n)
    ]
    mine = np.flatnonzero(tenant_of(np.arange(len(chunks))) == TENANT)
    targets = chunks[rng.choice(mine, size=n)]
    vectors = 0.7 * targets + 0.714 * unit_vectors(rng, n)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return queries, vectors.astype(np.float32)


# ---------------------------------------------------------------------------- index


def make_settings(args: argparse.Namespace):
    from datatorag.config import Mode, OpenSearchSettings, Settings

    # the edge runs as configured in production (the key checked, the buckets drawn from), with
    # limits far above what the benchmark sends: it measures queries, not refusals
    limits = {"per_s": 1e9, "burst": 1e9}
    if args.index == "opensearch":
        digest = hashlib.sha256(API_KEY.encode()).hexdigest()
        return Settings(
            mode=Mode.PRODUCTION,
            data_dir=Path(args.data_dir),
            api_keys=f"sha256:{digest}={TENANT}",  # production takes digests only
            service_token="bench-service-token-0123456789",
            rate_limit=limits,
            opensearch=OpenSearchSettings(url=args.opensearch_url, index_prefix="datatorag-bench"),
        )
    return Settings(data_dir=Path(args.data_dir), api_keys=f"{API_KEY}={TENANT}", rate_limit=limits)


def make_index(args: argparse.Namespace):
    from datatorag.bootstrap.factory import make_vector_index

    return make_vector_index(make_settings(args), model_id=MODEL_ID, dim=DIM)


async def build(args: argparse.Namespace, index, chunks: np.ndarray) -> dict[str, Any]:
    """Fill the index with ``chunks`` (their vectors) unless it already holds them (cached
    between runs)."""
    from datatorag.domain.models import ChunkRecord

    n = len(chunks)
    await index.ensure()
    have = await index.count()
    if have == n:
        if hasattr(index, "optimize"):
            await index.optimize()  # indexes the adapter may have gained since the data was built
        return {"chunks": n, "built": False}
    if have:
        raise SystemExit(
            f"{args.data_dir} holds {have} chunks, not {n}; remove it (or use another --data-dir)"
        )
    rng = np.random.default_rng(1)
    vocab = vocabulary()
    started = time.perf_counter()
    batch = 5000
    per_doc = PER_DOC
    for lo in range(0, n, batch):
        m = min(batch, n - lo)
        vectors = chunks[lo : lo + m]
        texts = zipf_texts(rng, vocab, m, args.words)
        records = []
        for j in range(m):
            i = lo + j
            doc = i // per_doc
            records.append(
                ChunkRecord(
                    id=f"doc{doc}:v1:{i % per_doc}",
                    tenant=tenant_of(i),
                    doc_id=f"doc{doc}",
                    version="v1",
                    chunk_index=i % per_doc,
                    text=texts[j],
                    title=f"Document {doc}",
                    page_start=i % per_doc + 1,
                    page_end=i % per_doc + 1,
                    source=f"source{doc % 3}",
                    path=f"docs/doc{doc}.pdf",
                    doc_type="pdf",
                    vector=vectors[j].tolist(),
                )
            )
        await index.upsert(records)
        print(f"  indexed {lo + m}/{n} chunks", file=sys.stderr, flush=True)
    if hasattr(index, "optimize"):
        await index.optimize()  # fold everything into the full-text index
    return {"chunks": n, "built": True, "build_s": round(time.perf_counter() - started, 1)}


# ---------------------------------------------------------------------------- the gateway process


class PrecomputedEmbedder:
    """Query vectors looked up by text: the gateway path minus the model forward pass."""

    model_id = MODEL_ID
    dim = DIM

    def __init__(self, queries: Sequence[str], vectors: np.ndarray) -> None:
        self._by_text = {q: vectors[i : i + 1] for i, q in enumerate(queries)}

    async def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return np.concatenate([self._by_text[t] for t in texts])

    async def embed_documents(self, texts, titles=None) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    async def check(self) -> None:
        return None

    async def close(self) -> None:
        return None


def serve(args: argparse.Namespace) -> None:
    """Child process: the gateway app on uvicorn (``--serve``)."""
    from datatorag.adapters.embedded.sqlite_registry import SqliteRegistry
    from datatorag.gateway import GatewayDeps, create_app
    from datatorag.observability.log import configure
    from datatorag.runtime import UvicornServer, freeze_heap, install_stop_signals, run_service

    settings = make_settings(args)
    configure("INFO", "json")  # as in production: one access line per request
    if args.embedder.startswith("minilm"):
        from datatorag.embedding.local import LocalEmbedder

        embedder = LocalEmbedder(settings.embedding)
    else:
        spec = json.loads(Path(args.queries_file).read_text())
        embedder = PrecomputedEmbedder(spec["queries"], np.asarray(spec["vectors"], np.float32))
    deps = GatewayDeps(
        settings=settings,
        index=make_index(args),
        embedder=embedder,  # type: ignore[arg-type]
        registry=SqliteRegistry(Path(args.data_dir) / "bench-registry.sqlite3"),
    )

    async def main() -> (
        None
    ):  # the server and event loop of libs/datatorag/entrypoints/serve_gateway.py
        http = UvicornServer(create_app(deps), "127.0.0.1", args.port)
        await http.start()
        freeze_heap()
        stop = asyncio.Event()
        install_stop_signals(stop)
        await stop.wait()
        await http.stop()

    run_service(main())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def start_gateway(args: argparse.Namespace, embedder: str, queries_file: Path):
    import httpx

    port = free_port()
    log = Path(args.data_dir) / f"gateway-{embedder}.log"
    cmd = [
        sys.executable,
        "-m",
        "bench.bench_query",
        "--serve",
        "--index",
        args.index,
        "--opensearch-url",
        args.opensearch_url,
        "--data-dir",
        args.data_dir,
        "--port",
        str(port),
        "--embedder",
        embedder,
        "--queries-file",
        str(queries_file),
    ]
    env = dict(os.environ)  # (datatorag.embedding sets OMP_WAIT_POLICY=PASSIVE for the model)
    with log.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdout=subprocess.DEVNULL, stderr=err, env=env
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    async with httpx.AsyncClient(base_url=url) as client:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise SystemExit(f"gateway exited with {proc.returncode}; see {log}")
            try:
                if (await client.get("/healthz")).status_code == 200:
                    return proc, url
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.25)
    await stop(proc)
    raise SystemExit(f"gateway did not start in 300 s; see {log}")


async def stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is not None:
        return
    proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), 10)
    except TimeoutError:
        proc.kill()
        await proc.wait()


# ---------------------------------------------------------------------------- load


async def load(
    call: Callable[[int], Awaitable[bool]], concurrency: int, total: int
) -> dict[str, Any]:
    """``total`` calls by ``concurrency`` clients, each issuing its next call when one returns."""
    latencies: list[float] = []
    errors = 0

    async def client(first: int) -> None:
        nonlocal errors
        for i in range(first, total, concurrency):
            started = time.perf_counter()
            ok = await call(i)
            latencies.append((time.perf_counter() - started) * 1000)
            errors += not ok

    started = time.perf_counter()
    await asyncio.gather(*(client(c) for c in range(concurrency)))
    wall = time.perf_counter() - started
    return {
        **percentiles(latencies),
        "mean": round(float(np.mean(latencies)), 3),
        "qps": round(total / wall, 1),
        "requests": total,
        "errors": errors,
    }


async def measure(
    name: str, call: Callable[[int], Awaitable[bool]], levels: list[int], requests: dict[int, int]
) -> dict[str, Any]:
    await load(call, 4, 40)  # warm up: caches, connections, lazy imports
    out = {}
    for c in levels:
        out[f"c{c}"] = stats = await load(call, c, requests[c])
        print(
            f"  {name:<22} c={c:<3} p50 {stats['p50']:8.1f} ms  p95 {stats['p95']:8.1f} ms  "
            f"p99 {stats['p99']:8.1f} ms  {stats['qps']:7.1f} q/s  errors {stats['errors']}",
            flush=True,
        )
    return out


CLIENT_CPU_MS: dict[str, float] = {}  # the load generator's own CPU per request, per run


async def gateway_run(
    args: argparse.Namespace,
    embedder: str,
    queries: list[str],
    queries_file: Path,
    levels: list[int],
    requests: dict[int, int],
) -> dict[str, Any]:
    """The load generator is aiohttp: it shares the 2 cores with the gateway, and per request it
    costs 0.4-0.7 ms of CPU where httpx costs 1.9 ms (measured; recorded per run as
    client_cpu_ms_per_request), CPU the gateway would lose."""
    import aiohttp

    proc, url = await start_gateway(args, embedder, queries_file)
    try:
        connector = aiohttp.TCPConnector(limit=max(levels))
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with aiohttp.ClientSession(
            base_url=url,
            connector=connector,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=60),
        ) as session:

            async def call(i: int) -> bool:
                body = {"query": queries[i % len(queries)], "k": K, "mode": "hybrid"}
                async with session.post("/v1/search", json=body) as resp:
                    if resp.status != 200:
                        return False
                    return len((await resp.json())["hits"]) == K

            cpu = time.process_time()
            out = await measure(f"gateway ({embedder})", call, levels, requests)
            CLIENT_CPU_MS[embedder] = round(
                (time.process_time() - cpu) * 1000 / (sum(requests.values()) + 40), 2
            )
            return out
    finally:
        await stop(proc)


async def bare_run(
    index,
    queries: list[str],
    vectors: np.ndarray,
    levels: list[int],
    requests: dict[int, int],
    limit: int | None = None,
) -> dict[str, Any]:
    """The adapter alone; with ``limit``, behind the same concurrency limit as the gateway."""
    sem = asyncio.Semaphore(limit) if limit else None

    async def bounded(coro):
        if sem is None:
            return await coro
        async with sem:
            return await coro

    async def call(i: int) -> bool:
        j = i % len(queries)
        knn, _bm25 = await asyncio.gather(
            bounded(index.knn(TENANT, vectors[j], CANDIDATES)),
            bounded(index.bm25(TENANT, queries[j], CANDIDATES)),
        )
        return len(knn) == CANDIDATES  # (a rare query may match no text: not an error)

    label = "bare index" + (f" (limit {limit})" if limit else "")
    return await measure(label, call, levels, requests)


async def raw_http_run(
    args: argparse.Namespace,
    index,
    queries: list[str],
    vectors: np.ndarray,
    levels: list[int],
    requests: dict[int, int],
) -> dict[str, Any]:
    """The tightest OpenSearch baseline we could write: aiohttp posting the adapter's own k-NN
    and BM25 bodies (built once, serialised once with orjson) straight to ``_search``, both
    concurrently as the hybrid search issues them, one pooled connection per client. No hit
    parsing beyond the count. opensearch-py in this process measured slower than the gateway
    itself, so it bounded nothing."""
    import aiohttp
    import orjson

    from datatorag.adapters.opensearch import mapping as m

    url = f"{args.opensearch_url.rstrip('/')}/{index.target}/_search"
    knn_bodies = [orjson.dumps(m.knn_query(TENANT, v.tolist(), CANDIDATES)) for v in vectors]
    bm25_bodies = [orjson.dumps(m.bm25_query(TENANT, q, CANDIDATES)) for q in queries]
    headers = {"Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=2 * max(levels))
    async with aiohttp.ClientSession(
        connector=connector, headers=headers, timeout=aiohttp.ClientTimeout(total=60)
    ) as session:

        async def post(body: bytes) -> int:
            async with session.post(url, data=body) as resp:
                if resp.status != 200:
                    return -1
                return len(orjson.loads(await resp.read())["hits"]["hits"])

        async def call(i: int) -> bool:
            j = i % len(queries)
            knn, bm25 = await asyncio.gather(post(knn_bodies[j]), post(bm25_bodies[j]))
            return knn == CANDIDATES and bm25 >= 0

        return await measure("raw aiohttp", call, levels, requests)


async def ann_recall(index, chunks: np.ndarray, vectors: np.ndarray) -> dict[str, float]:
    """The store's k-NN against an exact search (numpy) of the same vectors, tenant-filtered:
    speed bought with lost neighbours would show here."""
    ids = np.asarray([f"doc{i // PER_DOC}:v1:{i % PER_DOC}" for i in range(len(chunks))])
    mine = tenant_of(np.arange(len(chunks))) == TENANT
    out = {}
    for depth in (K, CANDIDATES):
        found = 0
        for v in vectors:
            scores = chunks @ v
            scores[~mine] = -np.inf
            exact = set(ids[np.argpartition(-scores, depth)[:depth]])
            got = {h.chunk.id for h in await index.knn(TENANT, v, depth)}
            found += len(exact & got)
        out[f"recall@{depth}"] = round(found / (depth * len(vectors)), 4)
    print(f"  k-NN recall vs exact search over {len(vectors)} queries: {out}", flush=True)
    return out


async def cpu_per_query(index, queries: list[str], vectors: np.ndarray, n: int = 100) -> dict:
    """Process CPU time (all threads) per sequential index query: what bounds throughput."""
    out = {}
    for name, run in (
        ("knn", lambda j: index.knn(TENANT, vectors[j], CANDIDATES)),
        ("bm25", lambda j: index.bm25(TENANT, queries[j], CANDIDATES)),
    ):
        await run(0)
        cpu, wall = time.process_time(), time.perf_counter()
        for i in range(n):
            await run(i % len(queries))
        out[f"{name}_cpu_ms"] = round((time.process_time() - cpu) * 1000 / n, 2)
        out[f"{name}_wall_ms"] = round((time.perf_counter() - wall) * 1000 / n, 2)
    per_pair = out["knn_cpu_ms"] + out["bm25_cpu_ms"]
    out["max_qps_all_cores"] = round((os.cpu_count() or 1) * 1000 / per_pair, 1)
    print(
        f"  bare index CPU per query: knn {out['knn_cpu_ms']} ms, bm25 {out['bm25_cpu_ms']} ms "
        f"-> at most {out['max_qps_all_cores']} hybrid q/s on {os.cpu_count()} cores",
        flush=True,
    )
    return out


# ---------------------------------------------------------------------------- main


async def run(args: argparse.Namespace) -> None:
    n = args.chunks or (10_000 if args.quick else 100_000)
    if args.data_dir is None:
        # v2: clustered vectors (chunk_vectors); a store built by an older layout is not reused
        args.data_dir = str(DATA_ROOT / f"query-{args.index}-{n}-v2")
    await asyncio.to_thread(Path(args.data_dir).mkdir, parents=True, exist_ok=True)
    levels = [int(c) for c in args.concurrency.split(",")]
    per_level = {1: 100, 10: 300, 100: 600} if args.quick else {1: 300, 10: 1000, 100: 2000}
    requests = {c: args.requests or per_level.get(c, 20 * c) for c in levels}

    index = make_index(args)
    print(f"store: {args.index}, {n} chunks in {args.data_dir}", flush=True)
    chunks = chunk_vectors(n)
    data = await build(args, index, chunks)
    queries, vectors = make_queries(vocabulary(), 500, chunks)
    queries_file = Path(args.data_dir) / "queries.json"
    queries_file.write_text(json.dumps({"queries": queries, "vectors": vectors.tolist()}))

    metrics: dict[str, Any] = {}
    from datatorag.gateway.deps import default_index_limit

    limit = default_index_limit()
    knn_recall = await ann_recall(index, chunks, vectors[:100])
    baseline = {
        "bare_index_cpu": await cpu_per_query(index, queries, vectors),
        "bare_index": await bare_run(index, queries, vectors, levels, requests),
        "bare_index_limited": await bare_run(index, queries, vectors, levels, requests, limit),
    }
    if args.index == "opensearch":
        baseline["raw_http"] = await raw_http_run(args, index, queries, vectors, levels, requests)
    embedders = ["precomputed", "minilm"] if args.embedder == "both" else [args.embedder]
    for emb in embedders:
        metrics[f"gateway_{emb.replace('-', '_')}"] = await gateway_run(
            args, emb, queries, queries_file, levels, requests
        )
    await index.close()

    ratios = {
        f"{name}_vs_{base}_{p}_c{c}": round(m[f"c{c}"][p] / b[f"c{c}"][p], 2)
        for name, m in metrics.items()
        for base, b in baseline.items()
        if base != "bare_index_cpu"
        for c in levels
        for p in ("p50", "p95")
    }
    targets = {}
    for name, m in metrics.items():
        if "c10" in m:
            p95 = m["c10"]["p95"]
            targets[f"{name} p95 at 10 concurrent (ms)"] = target(100, p95, p95 < 100)
        if "c100" in m:
            p99 = m["c100"]["p99"]
            targets[f"{name} p99 at 100 concurrent (ms)"] = target(1000, p99, p99 < 1000)
        errors = sum(s["errors"] for s in m.values())
        targets[f"{name} errors"] = target(0, errors, errors == 0)
    raw = baseline.get("raw_http")
    gw = metrics.get("gateway_precomputed")
    if raw and gw and "c10" in raw and "c10" in gw:
        gap = round(gw["c10"]["p95"] - raw["c10"]["p95"], 1)
        targets["gateway p95 within 10 ms of a raw aiohttp client at 10 concurrent (ms)"] = target(
            "<= 10", gap, gap <= 10
        )

    setup = {
        "index": args.index,
        "chunks": n,
        "knn_recall_vs_exact": knn_recall,
        "dim": DIM,
        "words_per_chunk": args.words,
        "tenants": {TENANT: 0.9, OTHER_TENANT: 0.1},
        "k": K,
        "candidates": CANDIDATES,
        "mode": "hybrid",
        "gateway_index_concurrency_limit": limit,
        "levels": levels,
        "requests": requests,
        "dataset": data,
        "vectors": "clustered: 0.5 theme + 0.5 document + 0.71 noise (chunk_vectors); query "
        "vectors paraphrase a chunk at cosine ~0.7",
        "query_vectors": "precomputed (looked up) and real MiniLM in the gateway",
        "http": "uvicorn "
        + ("httptools" if _has("httptools") else "h11")
        + " + "
        + ("uvloop" if _has("uvloop") else "asyncio"),
        "client": "aiohttp in a separate process, same machine",
        "client_cpu_ms_per_request": CLIENT_CPU_MS,
    }
    name = "query" if args.index == "lancedb" else f"query_{args.index}"
    path = write_result(
        name,
        {
            "setup": setup,
            "metrics": metrics,
            "baseline": baseline,
            "ratios": ratios,
            "targets": targets,
        },
    )
    print("\nratios (gateway / bare):")
    for key, value in ratios.items():
        print(f"  {key}: {value}")
    for key, t in targets.items():
        print(f"target {key}: {t['actual']} vs {t['target']} -> {'met' if t['met'] else 'NOT met'}")
    print(f"wrote {path}")


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="10k chunks, fewer requests")
    p.add_argument("--chunks", type=int, default=None, help="override the number of chunks")
    p.add_argument("--words", type=int, default=150, help="words per synthetic chunk")
    p.add_argument("--index", choices=["lancedb", "opensearch"], default="lancedb")
    p.add_argument("--opensearch-url", default="http://127.0.0.1:9200")
    p.add_argument(
        "--embedder",
        choices=["precomputed", "minilm", "both"],
        default="both",
        help="query vectors: looked up (precomputed), the real model in the gateway, or both",
    )
    p.add_argument("--concurrency", default="1,10,100")
    p.add_argument("--requests", type=int, default=None, help="requests per concurrency level")
    p.add_argument("--data-dir", default=None, help="where the store lives (cached)")
    # child process (the gateway under test)
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--queries-file", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args.serve:
        serve(args)
    else:
        from datatorag.runtime import run_service

        # the event loop the gateway runs on (uvloop): the bare-store baseline gets the same, and
        # the load generator's own CPU, taken from the same two cores, stays small
        run_service(run(args))


if __name__ == "__main__":
    main()
