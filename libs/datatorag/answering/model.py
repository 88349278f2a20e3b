"""What an answer is, independent of transport: the request, the result and the stream events.

REST (``/v1/answer``, JSON or ``text/event-stream``) and gRPC (``Answer``) render these same
objects, so both carry the same answer."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from datatorag.domain.models import SearchFilters


@dataclass(frozen=True)
class Turn:
    role: Literal["user", "assistant"]
    content: str


@dataclass(frozen=True)
class AnswerQuery:
    query: str
    k: int = 5
    filters: SearchFilters | None = None
    conversation: tuple[Turn, ...] = ()
    request_id: str | None = None


@dataclass(frozen=True)
class AnswerCitation:
    n: int  # the [n] marker in the answer
    doc_id: str
    version: str
    title: str | None
    path: str
    source: str
    section: str | None
    pages: str | None  # "p. 3" / "pp. 3–4" of the chunks holding the quote
    page_start: int | None
    page_end: int | None
    chunk_ids: tuple[str, ...]  # the chunks holding the quote (all of the passage without one)
    quote: str | None  # the supporting span, verbatim from the chunk


@dataclass(frozen=True)
class AnswerUsage:
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True)
class Grounding:
    removed_citations: int = 0  # [n] that was not a retrieved source
    repointed_citations: int = 0  # cited the wrong source; moved to the one that supports it
    added_citations: int = 0  # a supported sentence without a citation got one
    unsupported_sentences: tuple[str, ...] = ()  # dropped (or kept and flagged)
    injections_cut: int = 0  # instruction-like sentences cut from the sources
    revised: bool = False  # the final text differs from what was streamed


@dataclass(frozen=True)
class AnswerResult:
    query: str
    answer: str
    citations: tuple[AnswerCitation, ...]
    abstained: bool
    abstain_reason: str | None  # no_sources | low_evidence | model_abstained | unsupported
    provider: str
    model: str
    usage: AnswerUsage
    took_ms: float
    timings: dict[str, float] = field(default_factory=dict)
    rewritten_query: str | None = None
    confidence: float = 0.0  # the best evidence score among the retrieved sentences
    cached: bool = False
    grounding: Grounding = field(default_factory=Grounding)

    def but(self, **changes: object) -> AnswerResult:
        return replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class CitationsEvent:
    """First event: the retrieved sources the answer may cite (no quotes yet)."""

    sources: tuple[AnswerCitation, ...]
    provider: str
    rewritten_query: str | None


@dataclass(frozen=True)
class DeltaEvent:
    text: str


@dataclass(frozen=True)
class ResetEvent:
    """The provider failed mid-answer; discard the text so far, another provider answers."""

    provider: str
    reason: str


@dataclass(frozen=True)
class DoneEvent:
    result: AnswerResult


AnswerEvent = CitationsEvent | DeltaEvent | ResetEvent | DoneEvent


class AnswerUnavailable(Exception):
    """No provider could answer (all failed, or all circuits are open)."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s
