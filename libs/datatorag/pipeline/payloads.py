"""Blob payloads passed between stages (messages carry only their keys)."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import datetime

import numpy as np
from pydantic import BaseModel

from datatorag.domain.models import Chunk, ChunkRecord


class DocumentMeta(BaseModel):
    title: str | None = None
    doc_type: str | None = None
    page_count: int | None = None
    source: str
    path: str


class ChunkSet(BaseModel):
    """Parser output: one object per document version."""

    doc: DocumentMeta
    chunks: list[Chunk]


class EmbeddedChunkSet(BaseModel):
    """Embedder output: the chunks plus their vectors (float32, row-major, base64)."""

    doc: DocumentMeta
    chunks: list[Chunk]
    model_id: str
    dim: int
    vectors_b64: str

    @classmethod
    def build(cls, chunk_set: ChunkSet, vectors: np.ndarray, model_id: str) -> EmbeddedChunkSet:
        arr = np.ascontiguousarray(vectors, dtype="<f4")
        return cls(
            doc=chunk_set.doc,
            chunks=chunk_set.chunks,
            model_id=model_id,
            dim=int(arr.shape[1]),
            vectors_b64=base64.b64encode(arr.tobytes()).decode("ascii"),
        )

    def vectors(self) -> np.ndarray:
        arr = np.frombuffer(base64.b64decode(self.vectors_b64), dtype="<f4")
        return arr.reshape(len(self.chunks), self.dim)

    def records(
        self,
        tenant: str,
        doc_id: str,
        version: str,
        updated_at: datetime,
        groups: Sequence[str],
    ) -> list[ChunkRecord]:
        """The index records of this version (deterministic ids: a rewrite overwrites), for the
        audience ``groups`` (the registry's, which a changed audience updates in place)."""
        vectors = self.vectors()
        return [
            ChunkRecord(
                id=ChunkRecord.make_id(doc_id, version, c.index),
                tenant=tenant,
                doc_id=doc_id,
                version=version,
                chunk_index=c.index,
                text=c.text,
                title=c.title or self.doc.title,
                section=c.section,
                page_start=c.page_start,
                page_end=c.page_end,
                source=self.doc.source,
                path=self.doc.path,
                doc_type=self.doc.doc_type,
                updated_at=updated_at,
                groups=tuple(groups),
                vector=vectors[j].tolist(),
            )
            for j, c in enumerate(self.chunks)
        ]
