"""Index records for tests: one chunk with the fields every test would otherwise spell out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from datatorag.domain.models import ChunkRecord


def chunk_record(
    doc_id: str,
    text: str,
    vector: Sequence[float],
    *,
    tenant: str = "acme",
    version: str = "v1",
    chunk_index: int = 0,
    source: str = "hr",
    path: str = "hr/leave.md",
    **fields: Any,
) -> ChunkRecord:
    """Chunk ``chunk_index`` of ``doc_id`` at ``version``; ``fields``: any other field."""
    return ChunkRecord(
        id=ChunkRecord.make_id(doc_id, version, chunk_index),
        tenant=tenant,
        doc_id=doc_id,
        version=version,
        chunk_index=chunk_index,
        text=text,
        source=source,
        path=path,
        vector=[float(x) for x in vector],
        **fields,
    )
