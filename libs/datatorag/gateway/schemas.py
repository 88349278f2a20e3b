"""Request and response bodies of the query gateway (REST; the gRPC service mirrors them).

Requests forbid unknown fields: a ``tenant`` (or any misspelt field) in a body is a 422, never
silently used or ignored. The tenant always comes from the API key.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from datatorag.domain.models import (
    ChunkRecord,
    DocumentRecord,
    DocumentStatus,
    Identifier,
    SearchFilters,
    SearchHit,
)
from datatorag.retrieval.context import Citation, Context
from datatorag.retrieval.hybrid import Mode

# a source id, document type or id: 1-512 characters, no control character (NUL, C0/C1, DEL)
Name = Annotated[Identifier, StringConstraints(min_length=1, max_length=512)]
NameList = Annotated[list[Name], Field(min_length=1, max_length=100)]


class _Request(BaseModel):
    # numbers and flags are strict: ``true`` is not 1 and ``"5"`` not 5 (every field that takes
    # one says ``strict=True``)
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Filters(_Request):
    """Restrict results; every list must be non-empty (omit a field for no restriction)."""

    sources: NameList | None = Field(None, description="source ids", examples=[["hr-policies"]])
    doc_types: NameList | None = Field(None, description="document types, e.g. pdf, docx, md")
    doc_ids: NameList | None = None
    updated_after: datetime | None = Field(None, description="ISO 8601; naive times are UTC")
    updated_before: datetime | None = None

    @field_validator("updated_after", "updated_before")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    @model_validator(mode="after")
    def _range(self) -> Filters:
        if self.updated_after and self.updated_before and self.updated_after > self.updated_before:
            raise ValueError("updated_after must not be later than updated_before")
        return self

    def to_domain(self) -> SearchFilters:
        return SearchFilters(**self.model_dump())


class SearchRequest(_Request):
    query: str = Field(
        min_length=1,
        description="natural-language query; too long a query is answered 413",
        examples=["How many days of parental leave do I get?"],
    )
    k: int = Field(10, ge=1, le=100, strict=True, description="number of hits")
    mode: Mode = Field(Mode.HYBRID, description="hybrid (k-NN + BM25 fused by RRF), knn or bm25")
    filters: Filters | None = None


class QueryRequest(SearchRequest):
    k: int = Field(5, ge=1, le=100, strict=True, description="number of chunks behind the context")
    max_context_chars: int = Field(
        6000,
        ge=200,
        le=100_000,
        strict=True,
        description="budget of the context block in characters",
    )


class CitationOut(BaseModel):
    doc_id: str
    version: str
    title: str | None
    path: str
    source: str
    section: str | None = None
    doc_type: str | None = None
    page_start: int | None
    page_end: int | None
    chunk_index: int
    chunk_id: str


class HitOut(BaseModel):
    id: str = Field(description="chunk id: {doc_id}:{version}:{chunk_index}")
    text: str
    score: float = Field(description="RRF score (hybrid) or the retriever's own score")
    ranks: dict[str, int] = Field(description="1-based rank per retriever (knn, bm25)")
    updated_at: datetime
    citation: CitationOut

    @classmethod
    def of(cls, hit: SearchHit) -> HitOut:
        c = hit.chunk
        return cls(
            id=c.id,
            text=c.text,
            score=hit.score,
            ranks=hit.ranks,
            updated_at=c.updated_at,
            citation=CitationOut(
                doc_id=c.doc_id,
                version=c.version,
                title=c.title,
                path=c.path,
                source=c.source,
                section=c.section,
                doc_type=c.doc_type,
                page_start=c.page_start,
                page_end=c.page_end,
                chunk_index=c.chunk_index,
                chunk_id=c.id,
            ),
        )


class SearchResponse(BaseModel):
    query: str
    mode: Mode
    k: int
    took_ms: float
    hits: list[HitOut]
    degraded: bool = Field(
        False, description="BM25 alone: the embedder was unavailable (hybrid searches only)"
    )


class ContextCitationOut(BaseModel):
    n: int = Field(description="the [n] marker in the context block")
    label: str
    doc_id: str
    version: str
    title: str | None
    path: str
    source: str
    pages: str | None
    page_start: int | None
    page_end: int | None
    chunk_indexes: list[int]
    chunk_ids: list[str]

    @classmethod
    def of(cls, c: Citation) -> ContextCitationOut:
        return cls(
            n=c.n,
            label=c.label,
            doc_id=c.doc_id,
            version=c.version,
            title=c.title,
            path=c.path,
            source=c.source,
            pages=c.pages,
            page_start=c.page_start,
            page_end=c.page_end,
            chunk_indexes=list(c.chunk_indexes),
            chunk_ids=list(c.chunk_ids),
        )


class QueryResponse(BaseModel):
    query: str
    mode: Mode
    took_ms: float
    context: str = Field(description="numbered passages, ready to paste into an LLM prompt")
    citations: list[ContextCitationOut]
    truncated: bool = Field(description="a passage was cut or left out to fit the budget")
    hits: list[HitOut]
    degraded: bool = Field(
        False, description="BM25 alone: the embedder was unavailable (hybrid queries only)"
    )

    @classmethod
    def of(
        cls, req: QueryRequest, hits: list[SearchHit], ctx: Context, took_ms: float
    ) -> QueryResponse:
        return cls(
            query=req.query,
            mode=req.mode,
            took_ms=took_ms,
            context=ctx.text,
            citations=[ContextCitationOut.of(c) for c in ctx.citations],
            truncated=ctx.truncated,
            hits=[HitOut.of(h) for h in hits],
        )


class DocumentOut(BaseModel):
    """One version's registry record (the tenant is implied by the API key)."""

    doc_id: str
    version: str
    seq: int
    source: str
    path: str
    content_hash: str
    status: DocumentStatus
    reason: str | None
    error_code: str | None
    title: str | None
    doc_type: str | None
    size: int | None
    chunk_count: int | None
    page_count: int | None
    created_at: datetime
    updated_at: datetime
    metadata: dict[str, str]
    groups: list[str] = Field(description="who of the tenant may see it ('everyone': all)")

    @classmethod
    def of(cls, r: DocumentRecord) -> DocumentOut:
        return cls(**r.model_dump(exclude={"tenant", "blob_key"}))


class ChunkOut(BaseModel):
    id: str
    version: str
    chunk_index: int
    text: str
    title: str | None
    section: str | None
    page_start: int | None
    page_end: int | None
    doc_type: str | None
    updated_at: datetime

    @classmethod
    def of(cls, c: ChunkRecord) -> ChunkOut:
        return cls(**c.model_dump(include=set(cls.model_fields)))


class DocumentDetail(BaseModel):
    document: DocumentOut = Field(description="the current version")
    versions: list[DocumentOut] = Field(description="every version, newest first")
    chunks: list[ChunkOut] = Field(description="chunks in the index, by version and index")
    searchable: bool = Field(description="the current version is INDEXED and has chunks")


class StatusFilter(StrEnum):
    FETCHED = "FETCHED"
    PARSED = "PARSED"
    EMBEDDED = "EMBEDDED"
    INDEXED = "INDEXED"
    FAILED = "FAILED"
    DELETED = "DELETED"
    STALLED = "stalled"  # non-final for longer than DATATORAG_STALLED_AFTER_S


class DocumentList(BaseModel):
    count: int
    documents: list[DocumentOut]


class Accepted(BaseModel):
    status: str = "accepted"
    detail: dict[str, Any] = Field(default_factory=dict)


class ErrorDetail(BaseModel):
    code: str
    message: str
    request_id: str | None = None
    details: list[dict[str, Any]] | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail
