"""End-to-end ingestion on the embedded stack: generated 10-page PDFs, folder source -> parser
-> embedder -> indexer, all in one process as ``datatorag up`` runs them. Reports documents/min,
pages/min and the time to the first indexed document (the latency of one PDF through the pipeline).

Against the peer a user would pick instead: a Haystack 2.x indexing pipeline (PyPDF -> cleaner ->
splitter -> SentenceTransformers embedder -> in-memory store) over the same PDF files, the same
model directory, in the peers' venv (bench/peers/haystack_ingest.py), in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

from bench._common import target, write_result

REPO = Path(__file__).resolve().parent.parent


def _write_corpus(corpus: Path, n_docs: int, pages: int) -> None:
    from tests.fixtures.documents import text_pdf

    corpus.mkdir()
    for i in range(n_docs):
        (corpus / f"policy-{i:04}.pdf").write_bytes(
            text_pdf(pages=pages, seed=1000 + i, title=f"Policy {i}")
        )


async def run(n_docs: int, pages: int, corpus: Path) -> dict:
    from datatorag.bootstrap.components import (
        Components,
        embedder_worker,
        indexer_worker,
        parser_worker,
    )
    from datatorag.config import Settings
    from datatorag.connectors.folder import FolderSource
    from datatorag.connectors.sync import sync_source
    from datatorag.domain.models import DocumentStatus
    from datatorag.observability.log import configure

    configure("WARNING")
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp, "data"))
        c = Components(settings)
        workers = [await parser_worker(c), await embedder_worker(c), await indexer_worker(c)]
        await c.index()
        for w in workers:
            w.start()
        source = FolderSource("bench", "bench", corpus)
        t0 = time.perf_counter()
        run_ = await sync_source(
            source,
            registry=c.registry,
            blobstore=c.blobstore,
            parse_queue=c.queue("parse"),
            settings=settings,
        )
        assert run_.counts.get("new") == n_docs, run_.counts
        first = None
        while True:
            recs = await c.registry.find(tenant="bench", limit=100_000)
            done = sum(r.status is DocumentStatus.INDEXED for r in recs)
            failed = [r for r in recs if r.status is DocumentStatus.FAILED]
            assert not failed, failed[0].reason
            if done and first is None:
                first = time.perf_counter() - t0
            if done == n_docs:
                break
            await asyncio.sleep(0.2)
        elapsed = time.perf_counter() - t0
        chunks = sum(r.chunk_count or 0 for r in recs)
        for w in workers:
            await w.stop()
        await c.close()
    return {
        "docs": n_docs,
        "pages": n_docs * pages,
        "chunks": chunks,
        "seconds": elapsed,
        "first_doc_s": first,
    }


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def run_processes(n_docs: int, pages: int, corpus: Path, workers: int) -> dict:
    """The same pipeline as separate worker processes (``datatorag serve parser|embedder|
    indexer``), ``workers`` of each stage, sharing the embedded queue, registry, blob dir and
    store through the data directory; the connector's sync runs in this process."""
    import signal
    import subprocess
    import sys

    import httpx

    from datatorag.bootstrap.components import Components
    from datatorag.config import Settings
    from datatorag.connectors.folder import FolderSource
    from datatorag.connectors.sync import sync_source
    from datatorag.domain.models import DocumentStatus
    from datatorag.observability.log import configure

    configure("WARNING")
    repo = REPO
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp, "data")
        settings = Settings(data_dir=data)
        c = Components(settings)
        await c.index()  # created once, before several indexers race to create it
        procs, probes = [], []
        for stage in ("parser", "embedder", "indexer"):
            for _ in range(workers):
                port = _free_port()
                env = {
                    **os.environ,
                    "DATATORAG_DATA_DIR": str(data),
                    "DATATORAG_LOG_LEVEL": "WARNING",
                    "PYTHONPATH": f"{repo / 'libs'}:{repo}",
                    (
                        "DATATORAG_EMBEDDER_PORT"
                        if stage == "embedder"
                        else "DATATORAG_HEALTH_PORT"
                    ): str(port),
                }
                procs.append(
                    subprocess.Popen(  # noqa: ASYNC220 - started once, before the timing
                        [sys.executable, "-m", "datatorag.entrypoints.cli", "serve", stage],
                        env=env,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
                probes.append(f"http://127.0.0.1:{port}/readyz")
        try:
            deadline = time.monotonic() + 600
            async with httpx.AsyncClient(timeout=5) as http:
                for url in probes:
                    while True:
                        try:
                            if (await http.get(url)).status_code == 200:
                                break
                        except httpx.HTTPError:
                            pass
                        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                            raise RuntimeError("a worker process did not become ready")
                        await asyncio.sleep(0.5)
            t0 = time.perf_counter()
            await sync_source(
                FolderSource("bench", "bench", corpus),
                registry=c.registry,
                blobstore=c.blobstore,
                parse_queue=c.queue("parse"),
                settings=settings,
            )
            while True:
                recs = await c.registry.find(tenant="bench", limit=100_000)
                failed = [r for r in recs if r.status is DocumentStatus.FAILED]
                assert not failed, failed[0].reason
                if sum(r.status is DocumentStatus.INDEXED for r in recs) == n_docs:
                    break
                await asyncio.sleep(0.2)
            elapsed = time.perf_counter() - t0
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
            await c.close()
    return {"docs": n_docs, "workers_per_stage": workers, "seconds": elapsed}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--docs", type=int, default=None)
    ap.add_argument("--no-peers", action="store_true", help="skip Haystack (the peers' venv)")
    ap.add_argument(
        "--processes",
        default="1,2",
        help="also run each stage as this many worker processes ('' to skip)",
    )
    args = ap.parse_args()
    n = args.docs or (6 if args.quick else 40)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp, "corpus")
        _write_corpus(corpus, n, 10)
        load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
        r = asyncio.run(run(n, 10, corpus))
        peer: dict = {}
        if not args.no_peers:
            from bench._peers import run_peer
            from datatorag.embedding.model_dir import MINILM, resolve_model

            peer = run_peer(
                "haystack_ingest.py",
                "--pdfs",
                str(corpus),
                "--model-dir",
                str(resolve_model(MINILM).path),
            )
        parallel = {}
        for w in [int(x) for x in args.processes.split(",") if x.strip()]:
            pr = asyncio.run(run_processes(n, 10, corpus, w))
            parallel[f"{w}_per_stage"] = round(pr["docs"] / pr["seconds"] * 60, 1)
            print(f"processes: {w} per stage: {parallel[f'{w}_per_stage']} docs/min", flush=True)
        load_after = " ".join(f"{x:.2f}" for x in os.getloadavg())
    docs_min = r["docs"] / r["seconds"] * 60
    pages_min = r["pages"] / r["seconds"] * 60
    peer_docs_min = peer["docs"] / peer["seconds"] * 60 if peer else None
    ratio = docs_min / peer_docs_min if peer_docs_min else None
    if peer:
        print(
            f"haystack: {peer['docs']} PDFs ({peer['chunks']} chunks) in {peer['seconds']:.1f}s: "
            f"{peer_docs_min:.1f} docs/min; ours/haystack {ratio:.2f}x "
            f"(load {load_before} -> {load_after})"
        )
    print(
        f"ingestion: {r['docs']} PDFs x 10 pages ({r['chunks']} chunks) in {r['seconds']:.1f}s: "
        f"{docs_min:.1f} docs/min, {pages_min:.0f} pages/min, "
        f"first doc indexed after {r['first_doc_s']:.1f}s"
    )
    write_result(
        "ingestion",
        {
            "config": {
                "docs": r["docs"],
                "pages_per_doc": 10,
                "mode": "embedded, one process",
                "load_avg": [load_before, load_after],
            },
            "metrics": {
                "docs_per_min": round(docs_min, 1),
                "pages_per_min": round(pages_min),
                "chunks": r["chunks"],
                "seconds": round(r["seconds"], 1),
                "first_doc_indexed_s": round(r["first_doc_s"], 1),
                "haystack": {**peer, "docs_per_min": round(peer_docs_min, 1)} if peer else None,
                "worker_processes_docs_per_min": parallel,
            },
            "ratios": {"ours_over_haystack_docs_per_min": round(ratio, 3)} if ratio else {},
            "targets": {
                "10-page PDF processed < 30 s": target(
                    "< 30 s", round(r["first_doc_s"], 1), r["first_doc_s"] < 30
                ),
                "1000 PDFs in < 2 h": target(
                    ">= 8.4 docs/min", round(docs_min, 1), docs_min >= 1000 / 120
                ),
                **(
                    {
                        "ingestion vs a Haystack 2.x indexing pipeline (docs/min)": target(
                            ">= 2.0x", round(ratio, 2), ratio >= 2.0
                        )
                    }
                    if ratio
                    else {}
                ),
            },
        },
    )


if __name__ == "__main__":
    main()
