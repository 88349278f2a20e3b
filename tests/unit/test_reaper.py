"""Stalled documents are re-driven from their last durable step (real SQLite adapters)."""

from __future__ import annotations

from prometheus_client import REGISTRY

from datatorag.adapters.embedded.local_blobstore import LocalBlobStore
from datatorag.adapters.embedded.sqlite_queue import SqliteQueue
from datatorag.adapters.embedded.sqlite_registry import SqliteRegistry
from datatorag.domain.contracts import parse_message
from datatorag.domain.keys import chunks_key, records_key
from datatorag.domain.models import DocumentRecord, DocumentStatus
from datatorag.pipeline.reaper import StallReaper


async def test_each_stalled_state_is_redriven_from_its_durable_output(tmp_path):
    reg = SqliteRegistry(tmp_path / "reg.sqlite3")
    blobs = LocalBlobStore(tmp_path / "blobs")
    queues = {n: SqliteQueue(tmp_path / "q.sqlite3", n) for n in ("parse", "embed", "index")}

    def rec(doc: str, **kw) -> DocumentRecord:
        return DocumentRecord(
            tenant="t",
            doc_id=doc,
            version="v1",
            seq=1,
            source="s",
            path=f"{doc}.pdf",
            content_hash="h" * 64,
            blob_key=f"raw/t/s/{doc}/h",
            size=10,
            **kw,
        )

    for doc in ("fetched", "parsed", "parsed-no-blob", "embedded", "indexed"):
        await reg.put_version(rec(doc))
    await reg.advance("t", "parsed", "v1", DocumentStatus.PARSED, chunk_count=3)
    await reg.advance("t", "parsed-no-blob", "v1", DocumentStatus.PARSED, chunk_count=3)
    await reg.advance("t", "embedded", "v1", DocumentStatus.EMBEDDED, chunk_count=2)
    await reg.advance("t", "indexed", "v1", DocumentStatus.INDEXED, chunk_count=2)
    await blobs.put(chunks_key("t", "parsed", "v1"), b"{}")
    await blobs.put(records_key("t", "embedded", "v1", "m"), b"{}")

    reaper = StallReaper(reg, blobs, queues, stalled_after_s=0, model_id="m", dim=384)
    counts = await reaper.sweep()

    assert counts == {"FETCHED": 1, "PARSED": 1, "EMBEDDED": 1}
    assert REGISTRY.get_sample_value("datatorag_stalled_documents") == 4  # all non-final ones
    (p,) = await queues["parse"].receive(10)
    (e,) = await queues["embed"].receive(10)
    (i,) = await queues["index"].receive(10)
    assert parse_message(p.body).doc_id == "fetched"
    assert parse_message(e.body).doc_id == "parsed"
    idx = parse_message(i.body)
    assert idx.doc_id == "embedded" and idx.model_id == "m" and idx.dim == 384
    for q in queues.values():
        await q.close()
    await reg.close()
