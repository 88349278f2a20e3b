"""Answers: grounded, cited, streamed.

``AnswerEngine`` (``engine``) turns a question into an answer with citations: it retrieves
(``datatorag.retrieval``), numbers and fences the sources (``prompt``, ``injection``), asks the
providers of a ``ProviderChain`` (``fallback``: fallback order, circuit breakers, timeouts) -
the offline ``ExtractiveGenerator`` (``extractive``) or an LLM adapter of the generator port -
and checks what came back (``grounding``, ``markers``) against the evidence (``evidence``)
before anyone sees it as final. ``cache`` holds answers until the tenant's index changes.
"""

from datatorag.answering.cache import AnswerCache, IndexGenerations
from datatorag.answering.engine import AnswerEngine, EngineOptions
from datatorag.answering.evidence import EvidenceScorer
from datatorag.answering.extractive import ABSTENTION, ExtractiveGenerator
from datatorag.answering.fallback import CircuitBreaker, ProviderChain, Timeouts
from datatorag.answering.grounding import Grounder
from datatorag.answering.model import (
    AnswerCitation,
    AnswerEvent,
    AnswerQuery,
    AnswerResult,
    AnswerUnavailable,
    CitationsEvent,
    DeltaEvent,
    DoneEvent,
    ResetEvent,
    Turn,
)

__all__ = [
    "ABSTENTION",
    "AnswerCache",
    "AnswerCitation",
    "AnswerEngine",
    "AnswerEvent",
    "AnswerQuery",
    "AnswerResult",
    "AnswerUnavailable",
    "CircuitBreaker",
    "CitationsEvent",
    "DeltaEvent",
    "DoneEvent",
    "EngineOptions",
    "EvidenceScorer",
    "ExtractiveGenerator",
    "Grounder",
    "IndexGenerations",
    "ProviderChain",
    "ResetEvent",
    "Timeouts",
    "Turn",
]
