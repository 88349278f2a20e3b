"""An ``AnswerEngine`` from ``AnswerSettings`` and the providers to ask.

Providers come as a factory of the evidence scorer (the extractive answerer shares it with the
gate and grounding, so no sentence is embedded twice); without one, the offline extractive
answerer alone answers. Adapters of LLM providers are built by ``datatorag.bootstrap``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from datatorag.answering.cache import AnswerCache, IndexGenerations
from datatorag.answering.engine import AnswerEngine, EngineOptions, Retrieve
from datatorag.answering.evidence import EvidenceScorer
from datatorag.answering.extractive import ExtractiveGenerator
from datatorag.answering.fallback import ProviderChain, Timeouts
from datatorag.answering.grounding import Grounder
from datatorag.answering.model import AnswerResult
from datatorag.config import AnswerSettings
from datatorag.ports import Embedder, Generator, Registry

ProviderFactory = Callable[[EvidenceScorer], Sequence[Generator]]


def extractive_only(settings: AnswerSettings) -> ProviderFactory:
    def make(scorer: EvidenceScorer) -> list[Generator]:
        return [ExtractiveGenerator(scorer, min_evidence=settings.min_evidence)]

    return make


def engine_options(a: AnswerSettings) -> EngineOptions:
    return EngineOptions(
        min_evidence=a.min_evidence,
        llm_min_coverage=a.llm_min_coverage,
        max_context_chars=a.max_context_chars,
        max_tokens=a.max_tokens,
        temperature=a.temperature,
        rewrite_followups=a.rewrite_followups,
        rewrite_timeout_s=min(a.first_token_timeout_s, a.timeout_s),
    )


def build_engine(
    settings: AnswerSettings,
    *,
    retrieve: Retrieve,
    embedder: Embedder,
    registry: Registry | None,
    providers: ProviderFactory | None = None,
) -> AnswerEngine:
    scorer = EvidenceScorer(embedder)
    chain = ProviderChain(
        list((providers or extractive_only(settings))(scorer)),
        timeouts=Timeouts(
            settings.timeout_s, settings.first_token_timeout_s, settings.stall_timeout_s
        ),
        failures=settings.breaker_failures,
        reset_s=settings.breaker_reset_s,
    )
    cache: AnswerCache[AnswerResult] = AnswerCache(settings.cache_entries, settings.cache_ttl_s)
    return AnswerEngine(
        retrieve=retrieve,
        chain=chain,
        scorer=scorer,
        grounder=Grounder(
            scorer, min_support=settings.min_support, unsupported=settings.unsupported
        ),
        cache=cache,
        generations=IndexGenerations(registry, probe_s=settings.generation_probe_s),
        options=engine_options(settings),
    )
