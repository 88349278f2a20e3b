"""Domain records shared by every port and service."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from datatorag.domain.audience import DEFAULT_GROUPS, Groups


def utcnow() -> datetime:
    return datetime.now(UTC)


def no_control_characters(value: str) -> str:
    """``value``, when it holds no control character (NUL, C0/C1, DEL) and no lone surrogate:
    an identifier or filter value with one is a mistake, and some stores cannot take it."""
    for ch in value:
        if unicodedata.category(ch) in ("Cc", "Cs"):
            raise ValueError(f"must not contain control characters (found U+{ord(ch):04X})")
    return value


# a source id, document type or document id as filters and lookups take it
Identifier = Annotated[str, AfterValidator(no_control_characters)]


class DocumentStatus(StrEnum):
    FETCHED = "FETCHED"
    PARSED = "PARSED"
    EMBEDDED = "EMBEDDED"
    INDEXED = "INDEXED"
    FAILED = "FAILED"
    DELETED = "DELETED"

    @property
    def rank(self) -> int:
        """Progress order; a version's status may only move to a higher rank.

        FAILED and DELETED are terminal and outrank everything, so a late duplicate message
        can never resurrect a failed or deleted version.
        """
        return _RANK[self]

    @property
    def is_final(self) -> bool:
        return self in (DocumentStatus.INDEXED, DocumentStatus.FAILED, DocumentStatus.DELETED)


_RANK = {
    DocumentStatus.FETCHED: 1,
    DocumentStatus.PARSED: 2,
    DocumentStatus.EMBEDDED: 3,
    DocumentStatus.INDEXED: 4,
    DocumentStatus.FAILED: 5,
    DocumentStatus.DELETED: 6,
}


class DocumentRecord(BaseModel):
    """One version of one document: what an operator reads to learn why it is (not) searchable.

    ``version`` is the first 16 hex digits of the content's SHA-256, so a re-fetch of the same
    bytes is the same version. ``seq`` orders versions (nanoseconds at fetch): a stale version
    never overwrites a newer one.
    """

    model_config = ConfigDict(frozen=False)

    tenant: str
    doc_id: str
    version: str
    seq: int
    source: str
    path: str
    content_hash: str
    status: DocumentStatus = DocumentStatus.FETCHED
    reason: str | None = None
    error_code: str | None = None
    title: str | None = None
    doc_type: str | None = None
    size: int | None = None
    blob_key: str | None = None
    chunk_count: int | None = None
    page_count: int | None = None
    # who of the tenant may see this version (datatorag.domain.audience); set by the source
    groups: Groups = DEFAULT_GROUPS
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    metadata: dict[str, str] = Field(default_factory=dict)


class Chunk(BaseModel):
    """A piece of a parsed document, sized in tokens of the embedding model's tokenizer."""

    index: int
    text: str
    title: str | None = None
    section: str | None = None
    page_start: int | None = None
    page_end: int | None = None
    token_count: int = 0


class ChunkRecord(BaseModel):
    """What the vector index stores: a chunk, where it came from, and its vector."""

    id: str  # "{doc_id}:{version}:{n}" - deterministic, so redelivery never duplicates
    tenant: str
    doc_id: str
    version: str
    chunk_index: int
    text: str
    title: str | None = None
    section: str | None = None
    page_start: int | None = None
    page_end: int | None = None
    source: str
    path: str
    doc_type: str | None = None
    groups: Groups = DEFAULT_GROUPS  # the document version's audience, filtered inside queries
    updated_at: datetime = Field(default_factory=utcnow)
    vector: list[float] | None = None

    @staticmethod
    def make_id(doc_id: str, version: str, n: int) -> str:
        return f"{doc_id}:{version}:{n}"


class SearchFilters(BaseModel):
    """Filters applied inside the index query (never as a post-filter)."""

    sources: list[Identifier] | None = None
    doc_types: list[Identifier] | None = None
    doc_ids: list[Identifier] | None = None
    updated_after: datetime | None = None
    updated_before: datetime | None = None


class SearchHit(BaseModel):
    chunk: ChunkRecord
    score: float
    # per-retriever ranks (1-based) kept for explainability of the fusion
    ranks: dict[str, int] = Field(default_factory=dict)


JSON = dict[str, Any]
