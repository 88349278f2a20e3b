"""The ingestion progress line of ``datatorag up`` / ``status --watch``: a rate and ETA while
documents are pending, one steady line once every document is final."""

from __future__ import annotations

from datatorag.domain.models import DocumentRecord, DocumentStatus
from datatorag.entrypoints.progress import IngestRate


def _docs(indexed: int, pending: int) -> list[DocumentRecord]:
    def doc(i: int, status: DocumentStatus) -> DocumentRecord:
        return DocumentRecord(
            tenant="acme", doc_id=f"d{i}", version="v1", seq=1, source="s", path=f"{i}.md",
            content_hash="h", status=status,
        )  # fmt: skip

    return [doc(i, DocumentStatus.INDEXED) for i in range(indexed)] + [
        doc(indexed + i, DocumentStatus.PARSED) for i in range(pending)
    ]


def test_rate_and_eta_while_pending_then_one_steady_line() -> None:
    rate = IngestRate()
    rate.snapshot(_docs(0, 10), now=0.0)
    busy = rate.snapshot(_docs(5, 5), now=30.0)
    assert busy.per_s == 5 / 30 and busy.eta_s == 30.0
    assert "10.0 documents/min" in busy.line() and "ETA 0:30" in busy.line()
    done = [rate.snapshot(_docs(10, 0), now=t).line() for t in (40.0, 50.0, 120.0, 600.0)]
    assert len(set(done)) == 1, done  # no decaying rate printed again and again
    assert done[0] == "documents: indexed 10; ETA 0:00"
