"""Bodies of ``POST /v1/answer`` (the gRPC ``Answer`` stream mirrors them)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from datatorag.answering import AnswerCitation, AnswerQuery, AnswerResult, Turn
from datatorag.gateway.schemas import Filters, _Request

MAX_TURNS = 20
MAX_TURN_CHARS = 8000


class TurnIn(_Request):
    role: Literal["user", "assistant"]
    content: str = Field(min_length=1, max_length=MAX_TURN_CHARS)


class AnswerRequest(_Request):
    query: str = Field(
        min_length=1,
        description="the question; over DATATORAG_ANSWER_MAX_QUESTION_CHARS is a 422",
        examples=["How many days of PTO carry over into the next year?"],
    )
    k: int = Field(5, ge=1, le=20, strict=True, description="chunks retrieved as sources")
    filters: Filters | None = None
    conversation: list[TurnIn] = Field(
        default_factory=list,
        max_length=MAX_TURNS,
        description="earlier turns, oldest first; a follow-up is rewritten into a standalone "
        "question before retrieval (the rewrite is returned)",
    )
    stream: bool = Field(
        False,
        strict=True,
        description="text/event-stream: `citations`, `delta`… (`reset` if a provider failed "
        "mid-answer), then `done` with the full answer (also with Accept: text/event-stream)",
    )

    def to_query(self, request_id: str | None) -> AnswerQuery:
        return AnswerQuery(
            query=self.query,
            k=self.k,
            filters=self.filters.to_domain() if self.filters else None,
            conversation=tuple(Turn(t.role, t.content) for t in self.conversation),
            request_id=request_id,
        )


class AnswerCitationOut(BaseModel):
    n: int = Field(description="the [n] marker in the answer")
    doc_id: str
    version: str
    title: str | None
    path: str
    source: str
    section: str | None
    pages: str | None = Field(description="pages of the chunks holding the quote, e.g. 'p. 3'")
    page_start: int | None
    page_end: int | None
    chunk_ids: list[str] = Field(description="the chunks holding the quote")
    quote: str | None = Field(description="the supporting span, verbatim from the chunk")

    @classmethod
    def of(cls, c: AnswerCitation) -> AnswerCitationOut:
        return cls(
            n=c.n,
            doc_id=c.doc_id,
            version=c.version,
            title=c.title,
            path=c.path,
            source=c.source,
            section=c.section,
            pages=c.pages,
            page_start=c.page_start,
            page_end=c.page_end,
            chunk_ids=list(c.chunk_ids),
            quote=c.quote,
        )


class UsageOut(BaseModel):
    input_tokens: int
    output_tokens: int


class GroundingOut(BaseModel):
    removed_citations: int = Field(description="[n] markers for sources that were not retrieved")
    repointed_citations: int = Field(description="moved to the retrieved source that supports it")
    added_citations: int
    unsupported_sentences: list[str] = Field(description="dropped (or flagged) sentences")
    injections_cut: int = Field(description="instruction-like sentences cut from the sources")
    revised: bool = Field(description="the final answer differs from the streamed text")


class AnswerResponse(BaseModel):
    query: str
    answer: str = Field(description="the answer with [n] markers, or 'The documents do not say.'")
    citations: list[AnswerCitationOut]
    abstained: bool
    abstain_reason: str | None = Field(
        description="no_sources | low_evidence | model_abstained | unsupported"
    )
    provider: str = Field(description="the provider that answered: extractive, openai, bedrock")
    model: str
    usage: UsageOut
    took_ms: float
    timings: dict[str, float]
    rewritten_query: str | None
    confidence: float = Field(description="best evidence score of the retrieved sentences, 0..1")
    cached: bool
    grounding: GroundingOut

    @classmethod
    def of(cls, r: AnswerResult) -> AnswerResponse:
        g = r.grounding
        return cls(
            query=r.query,
            answer=r.answer,
            citations=[AnswerCitationOut.of(c) for c in r.citations],
            abstained=r.abstained,
            abstain_reason=r.abstain_reason,
            provider=r.provider,
            model=r.model,
            usage=UsageOut(input_tokens=r.usage.input_tokens, output_tokens=r.usage.output_tokens),
            took_ms=r.took_ms,
            timings=r.timings,
            rewritten_query=r.rewritten_query,
            confidence=r.confidence,
            cached=r.cached,
            grounding=GroundingOut(
                removed_citations=g.removed_citations,
                repointed_citations=g.repointed_citations,
                added_citations=g.added_citations,
                unsupported_sentences=list(g.unsupported_sentences),
                injections_cut=g.injections_cut,
                revised=g.revised,
            ),
        )
