"""The answer pipeline, transport-independent: conversation rewrite -> cache -> retrieval ->
numbered sources -> evidence gate -> provider chain -> grounding -> citations.

``stream`` yields ``CitationsEvent``, ``DeltaEvent``s (``ResetEvent`` when a provider failed
mid-answer) and one ``DoneEvent``; ``answer`` runs the same stream and returns the
``DoneEvent``'s result, so a streamed and a non-streamed request end with the same object.

Nothing on the way to an LLM's first token calls the embedding model except the one query
embedding that retrieval needs: the gate in front of an LLM is lexical, and the model-based
checks (support, quotes) run on the finished text.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from datatorag.answering import metrics
from datatorag.answering.cache import AnswerCache, IndexGenerations, cache_key
from datatorag.answering.evidence import EvidenceScorer, Passage, passage
from datatorag.answering.extractive import ABSTENTION
from datatorag.answering.fallback import (
    AllProvidersFailed,
    Attempt,
    ProviderChain,
    Reset,
)
from datatorag.answering.grounding import Grounded, Grounder
from datatorag.answering.markers import MarkerFilter
from datatorag.answering.model import (
    AnswerCitation,
    AnswerEvent,
    AnswerQuery,
    AnswerResult,
    AnswerUnavailable,
    AnswerUsage,
    CitationsEvent,
    DeltaEvent,
    DoneEvent,
    Grounding,
    ResetEvent,
    Turn,
)
from datatorag.answering.prompt import answer_messages, clean_rewrite, rewrite_messages
from datatorag.answering.text import normalise, strip_markers, terms
from datatorag.domain.audience import visible
from datatorag.domain.models import ChunkRecord, DocumentStatus, SearchFilters, SearchHit
from datatorag.domain.principal import Principal
from datatorag.observability.log import get_logger
from datatorag.ports import (
    ChatMessage,
    Finished,
    GenerationRequest,
    SourcePassage,
    TextDelta,
)
from datatorag.retrieval.context import Citation, Context, build_context

log = get_logger(__name__)

# (principal, query, k, filters, query vector) -> hits the principal may see, best first
Retrieve = Callable[
    [Principal, str, int, SearchFilters | None, Sequence[float] | None],
    Awaitable[list[SearchHit]],
]
_PRONOUNS = frozenset(
    {"it", "its", "that", "this", "they", "them", "those", "these", "there", "he", "she", "one"}
)


@dataclass
class EngineOptions:
    min_evidence: float = 0.45  # extractive: abstain below
    llm_min_coverage: float = 0.2  # LLM: not asked below (lexical coverage of the question)
    max_context_chars: int = 8000
    max_tokens: int = 512
    temperature: float = 0.0
    rewrite_followups: bool = True
    rewrite_timeout_s: float = 10.0


@dataclass
class _Sources:
    context: Context
    passages: dict[int, Passage]
    citations: dict[int, Citation]
    chunks: dict[int, list[ChunkRecord]]
    injections_cut: int


class AnswerEngine:
    def __init__(
        self,
        *,
        retrieve: Retrieve,
        chain: ProviderChain,
        scorer: EvidenceScorer,
        grounder: Grounder,
        cache: AnswerCache[AnswerResult] | None = None,
        generations: IndexGenerations | None = None,
        options: EngineOptions | None = None,
    ) -> None:
        self.retrieve = retrieve
        self.chain = chain
        self.scorer = scorer
        self.grounder = grounder
        # (an empty cache is falsy: it has a length)
        self.cache: AnswerCache[AnswerResult] = AnswerCache(0) if cache is None else cache
        self.generations = IndexGenerations(None) if generations is None else generations
        self.options = options or EngineOptions()

    async def answer(self, principal: Principal, query: AnswerQuery) -> AnswerResult:
        result: AnswerResult | None = None
        async for event in self.stream(principal, query):
            if isinstance(event, DoneEvent):
                result = event.result
        assert result is not None  # the stream always ends with DoneEvent or raises
        return result

    async def stream(
        self, principal: Principal, query: AnswerQuery
    ) -> AsyncGenerator[AnswerEvent, None]:
        """The answer for ``principal``: retrieval sees only the documents of its tenant and
        audience, so the sources, quotes and citations are only ever those."""
        tenant = principal.tenant
        audience = principal.audience()
        started = time.perf_counter()
        timings: dict[str, float] = {}
        question = query.query.strip()
        history = [Turn(t.role, strip_markers(t.content)) for t in query.conversation]

        # 1. a follow-up becomes a standalone question before retrieval
        rewritten: str | None = None
        if history:
            t0 = time.perf_counter()
            rewritten = await self._rewrite(tenant, question, history, query.request_id)
            timings["rewrite_ms"] = _ms(t0)
        search_query = rewritten or question

        # 2. the cache: same tenant, audience, question, conversation, filters and index
        #    generation (an answer is only ever served to principals who see the same documents)
        t0 = time.perf_counter()
        generation = await self.generations.current(tenant)
        key = cache_key(
            tenant,
            search_query,
            audience=audience,
            history=[(t.role, t.content) for t in history],
            filters=query.filters.model_dump(mode="json") if query.filters else None,
            k=query.k,
            chain=self.chain.names,
            generation=generation,
        )
        cached = self.cache.get(key)
        if cached is not None and not await self._still_visible(principal, cached):
            cached = None  # a cited document left the audience (or was deleted) since
        if cached is not None:
            result = cached.but(
                cached=True, took_ms=_ms(started), timings={"cache_ms": _ms(t0)}, query=question
            )
            yield CitationsEvent(result.citations, result.provider, result.rewritten_query)
            if result.answer:
                yield DeltaEvent(result.answer)
            yield DoneEvent(result)
            return

        # 3. retrieval and the numbered sources
        t0 = time.perf_counter()
        # one query embedding serves retrieval and the evidence scores
        vector = await self.scorer.query_vector(tenant, search_query)
        hits = await self.retrieve(principal, search_query, query.k, query.filters, vector.tolist())
        timings["retrieval_ms"] = _ms(t0)
        sources = self._sources(hits)
        first = self.chain.first_available()
        provider_name = first.name if first is not None else self.chain.names[0]
        yield CitationsEvent(
            tuple(self._candidate(n, sources) for n in sorted(sources.citations)),
            provider_name,
            rewritten,
        )
        if not sources.passages:
            result = self._abstain(
                question, rewritten, "no_sources", provider_name, first, started, timings, 0.0
            )
            yield DeltaEvent(result.answer)
            self._finish(result, key)
            yield DoneEvent(result)
            return

        # 4. provider and evidence gate
        request = GenerationRequest(
            question=search_query,
            sources=tuple(
                SourcePassage(n, p.text, p.title, p.section) for n, p in sources.passages.items()
            ),
            messages=self._messages(search_query, sources, history),
            max_tokens=self.options.max_tokens,
            temperature=self.options.temperature,
            request_id=query.request_id,
            tenant=tenant,
        )
        # The gate: the extractive answerer needs the full evidence scores anyway (and reuses
        # their vectors); in front of an LLM the gate is on the first token's path, so it is
        # lexical only (no model call): the LLM is told to abstain, and grounding checks what
        # it wrote against the sources with the model afterwards.
        t_gate = time.perf_counter()
        llm_first = first is not None and first.name != "extractive"
        if llm_first:
            confidence = self.scorer.coverage(search_query, list(sources.passages.values()))
            passed = confidence >= self.options.llm_min_coverage
        else:
            evidence = await self.scorer.score(
                tenant, search_query, list(sources.passages.values())
            )
            confidence = evidence.best
            passed = confidence >= self.options.min_evidence
        timings["evidence_ms"] = _ms(t_gate)
        if not passed:
            result = self._abstain(
                question,
                rewritten,
                "low_evidence",
                provider_name,
                first,
                started,
                timings,
                confidence,
                sources.injections_cut,
            )
            yield DeltaEvent(result.answer)
            self._finish(result, key)
            yield DoneEvent(result)
            return

        stream = self.chain.stream(request)
        try:
            # 5. the provider's text, filtered for citations of sources that do not exist
            provider, model = provider_name, first.model if first is not None else ""
            markers = MarkerFilter(sources.passages)
            streamed: list[str] = []
            usage = AnswerUsage()
            t_gen = time.perf_counter()
            async for event in stream:
                if isinstance(event, Attempt):
                    provider, model = event.provider, event.model
                elif isinstance(event, Reset):
                    streamed.clear()
                    markers = MarkerFilter(sources.passages)
                    yield ResetEvent(event.provider, event.reason)
                elif isinstance(event, TextDelta):
                    text = markers.feed(event.text)
                    if text:
                        if "first_token_ms" not in timings:
                            timings["first_token_ms"] = _ms(started)
                            metrics.TIME_TO_FIRST_TOKEN.labels(provider).observe(
                                time.perf_counter() - started
                            )
                        streamed.append(text)
                        yield DeltaEvent(text)
                elif isinstance(event, Finished):
                    usage = AnswerUsage(event.usage.input_tokens, event.usage.output_tokens)
                    model = event.model or model
            tail = markers.flush()
            if tail:
                streamed.append(tail)
                yield DeltaEvent(tail)
            timings["generation_ms"] = _ms(t_gen)
        except AllProvidersFailed as exc:
            metrics.ANSWERS.labels(provider_name, "failed").inc()
            raise AnswerUnavailable(str(exc), exc.retry_after_s) from exc
        finally:
            await stream.aclose()  # type: ignore[attr-defined]

        # 6. grounding: the final text, citations and quotes
        t0 = time.perf_counter()
        raw = "".join(streamed)
        grounded = await self.grounder.ground(tenant, raw, sources.passages)
        grounded.removed_citations += markers.removed  # those never reached the client
        timings["grounding_ms"] = _ms(t0)
        result = self._result(
            question,
            rewritten,
            grounded,
            raw,
            sources,
            provider,
            model,
            usage,
            started,
            timings,
            confidence if not llm_first else max(grounded.support.values(), default=0.0),
        )
        self._finish(result, key)
        yield DoneEvent(result)

    # -- steps --------------------------------------------------------------------------------

    async def _still_visible(self, principal: Principal, cached: AnswerResult) -> bool:
        """Whether every document a cached answer cites is still the principal's to see: the
        index generation is re-read only every ``probe_s``, an audience change must not wait
        for it (a few registry reads per cache hit)."""
        registry = self.generations.registry
        if registry is None:
            return True
        audience = principal.audience()
        for doc_id in {c.doc_id for c in cached.citations}:
            current = await registry.current(principal.tenant, doc_id)
            if (
                current is None
                or current.status is DocumentStatus.DELETED
                or not visible(current.groups, audience)
            ):
                return False
        return True

    async def _rewrite(
        self, tenant: str, question: str, history: Sequence[Turn], request_id: str | None
    ) -> str | None:
        """A standalone question for retrieval: the LLM's rewrite when one is configured, else
        (or when it fails) the last user question prefixed to a follow-up that leans on it."""
        llms = [p.name for p in self.chain.providers if p.name != "extractive"]
        if self.options.rewrite_followups and llms:
            request = GenerationRequest(
                question=question,
                sources=(),
                messages=rewrite_messages(
                    question, [ChatMessage(t.role, t.content) for t in history]
                ),
                max_tokens=96,
                temperature=0.0,
                request_id=request_id,
                tenant=tenant,
            )
            parts: list[str] = []
            try:
                async with asyncio.timeout(self.options.rewrite_timeout_s):
                    async for event in self.chain.stream(request, only=llms):
                        if isinstance(event, Reset):
                            parts.clear()
                        elif isinstance(event, TextDelta):
                            parts.append(event.text)
                text = clean_rewrite("".join(parts), "", 4 * max(len(question), 200))
                if text:
                    return text
            except (AllProvidersFailed, TimeoutError) as exc:
                log.warning("follow-up rewrite failed; using the heuristic", error=str(exc))
        last_user = next((t.content for t in reversed(history) if t.role == "user"), None)
        if last_user is None:
            return None
        words = set(normalise(question).replace("?", " ").split())
        if len(terms(question)) <= 2 or words & _PRONOUNS:
            return f"{last_user.strip()} {question}"
        return None

    def _sources(self, hits: Sequence[SearchHit]) -> _Sources:
        ctx = build_context(hits, max_chars=self.options.max_context_chars)
        passages: dict[int, Passage] = {}
        citations: dict[int, Citation] = {}
        chunks: dict[int, list[ChunkRecord]] = {}
        cut = 0
        for c, text, members in zip(ctx.citations, ctx.passages, ctx.chunks, strict=True):
            p = passage(c.n, text, c.title, members[0].section if members else None)
            cut += p.injections_cut
            passages[c.n], citations[c.n], chunks[c.n] = p, c, members
        if cut:
            metrics.GROUNDING.labels("injection_cut").inc(cut)
            log.warning("instruction-like text cut from sources", sentences=cut)
        return _Sources(ctx, passages, citations, chunks, cut)

    def _messages(
        self, question: str, sources: _Sources, history: Sequence[Turn]
    ) -> tuple[ChatMessage, ...]:
        return answer_messages(
            question,
            [SourcePassage(n, p.text, p.title, p.section) for n, p in sources.passages.items()],
            [ChatMessage(t.role, t.content) for t in history],
        )

    def _candidate(self, n: int, sources: _Sources) -> AnswerCitation:
        return _citation(sources.citations[n], sources.chunks[n], None)

    def _abstain(
        self,
        question: str,
        rewritten: str | None,
        reason: str,
        provider: str,
        first: object,
        started: float,
        timings: dict[str, float],
        confidence: float,
        injections_cut: int = 0,
    ) -> AnswerResult:
        model = getattr(first, "model", "") or ""
        return AnswerResult(
            query=question,
            answer=ABSTENTION,
            citations=(),
            abstained=True,
            abstain_reason=reason,
            provider=provider,
            model=model,
            usage=AnswerUsage(),
            took_ms=_ms(started),
            timings=timings,
            rewritten_query=rewritten,
            confidence=round(confidence, 4),
            grounding=Grounding(injections_cut=injections_cut),
        )

    def _result(
        self,
        question: str,
        rewritten: str | None,
        grounded: Grounded,
        raw: str,
        sources: _Sources,
        provider: str,
        model: str,
        usage: AnswerUsage,
        started: float,
        timings: dict[str, float],
        confidence: float,
    ) -> AnswerResult:
        for action, count in (
            ("citation_removed", grounded.removed_citations),
            ("citation_repointed", grounded.repointed_citations),
            ("citation_added", grounded.added_citations),
            ("sentence_unsupported", len(grounded.unsupported)),
        ):
            if count:
                metrics.GROUNDING.labels(action).inc(count)
        text = ABSTENTION if grounded.abstained else grounded.text
        citations = tuple(
            _citation(
                sources.citations[n],
                sources.chunks[n],
                grounded.quotes[n].quote if n in grounded.quotes else None,
                [u.quote for u in grounded.evidence.get(n, [])],
            )
            for n in grounded.cited
        )
        return AnswerResult(
            query=question,
            answer=text,
            citations=citations,
            abstained=grounded.abstained,
            abstain_reason=grounded.abstain_reason,
            provider=provider,
            model=model,
            usage=usage,
            took_ms=_ms(started),
            timings=timings,
            rewritten_query=rewritten,
            confidence=round(confidence, 4),
            grounding=Grounding(
                removed_citations=grounded.removed_citations,
                repointed_citations=grounded.repointed_citations,
                added_citations=grounded.added_citations,
                unsupported_sentences=tuple(grounded.unsupported),
                injections_cut=sources.injections_cut,
                revised=normalise(text) != normalise(raw),
            ),
        )

    def _finish(self, result: AnswerResult, key: str) -> None:
        outcome = "abstained" if result.abstained else "answered"
        metrics.ANSWERS.labels(result.provider, outcome).inc()
        metrics.ANSWER_SECONDS.labels(result.provider).observe(result.took_ms / 1000)
        if result.abstain_reason:
            metrics.ABSTENTIONS.labels(result.abstain_reason).inc()
        metrics.TOKENS.labels(result.provider, "in").inc(result.usage.input_tokens)
        metrics.TOKENS.labels(result.provider, "out").inc(result.usage.output_tokens)
        self.cache.put(key, result)
        log.info(
            "answer",
            provider=result.provider,
            abstained=result.abstained,
            reason=result.abstain_reason,
            citations=len(result.citations),
            took_ms=result.took_ms,
            confidence=result.confidence,
        )

    async def close(self) -> None:
        await self.chain.close()


def _citation(
    c: Citation,
    chunks: Sequence[ChunkRecord],
    quote: str | None,
    supporting: Sequence[str] = (),
) -> AnswerCitation:
    """A citation narrowed to the chunks that hold what supports it (its quote, and the best
    sentence for every other sentence citing it): their pages, their ids."""
    holding = list(chunks)
    needles = [normalise(t) for t in dict.fromkeys([*([quote] if quote else []), *supporting])]
    if needles:
        found = [ch for ch in chunks if any(n in normalise(ch.text) for n in needles)]
        holding = found or holding
    starts = [ch.page_start for ch in holding if ch.page_start is not None]
    ends = [ch.page_end if ch.page_end is not None else ch.page_start for ch in holding]
    ends_known = [e for e in ends if e is not None]
    start = min(starts) if starts else None
    end = max(ends_known) if ends_known else None
    pages = None
    if start is not None:
        last = end if end is not None else start
        pages = f"p. {start}" if last == start else f"pp. {start}–{last}"
    return AnswerCitation(
        n=c.n,
        doc_id=c.doc_id,
        version=c.version,
        title=c.title,
        path=c.path,
        source=c.source,
        section=holding[0].section if holding else None,
        pages=pages,
        page_start=start,
        page_end=end,
        chunk_ids=tuple(ch.id for ch in holding),
        quote=quote,
    )


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
