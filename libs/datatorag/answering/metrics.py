"""Answer metrics (Prometheus): latency to the first token and to the end, tokens, provider
errors and fallbacks, abstentions, grounding corrections and the answer cache."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80)

TIME_TO_FIRST_TOKEN = Histogram(
    "datatorag_answer_time_to_first_token_seconds",
    "From the request to the first answer text, by provider (cache hits excluded)",
    ["provider"],
    buckets=_BUCKETS,
)
ANSWER_SECONDS = Histogram(
    "datatorag_answer_seconds",
    "From the request to the final answer, by provider",
    ["provider"],
    buckets=_BUCKETS,
)
TOKENS = Counter(
    "datatorag_answer_tokens_total",
    "Tokens a provider read and wrote (extractive: words), by provider and direction (in, out)",
    ["provider", "direction"],
)
PROVIDER_ERRORS = Counter(
    "datatorag_answer_provider_errors_total",
    "Provider failures by kind (unavailable, timeout, stalled, malformed, misconfigured, "
    "rejected, circuit_open)",
    ["provider", "kind"],
)
FALLBACKS = Counter(
    "datatorag_answer_fallbacks_total",
    "Answers that fell back from one provider to the next",
    ["from_provider", "to_provider"],
)
BREAKER_STATE = Gauge(
    "datatorag_answer_circuit_open", "1 while a provider's circuit breaker is open", ["provider"]
)
ANSWERS = Counter(
    "datatorag_answers_total",
    "Answers by provider and outcome (answered, abstained, failed)",
    ["provider", "outcome"],
)
ABSTENTIONS = Counter(
    "datatorag_answer_abstentions_total",
    "Abstentions by reason (no_sources, low_evidence, model_abstained, unsupported)",
    ["reason"],
)
GROUNDING = Counter(
    "datatorag_answer_grounding_total",
    "Grounding corrections: citations removed (not retrieved), re-pointed, added; sentences "
    "unsupported; instruction-like sentences cut from sources",
    ["action"],
)
CACHE = Counter(
    "datatorag_answer_cache_requests_total",
    "Answer cache look-ups by result (hit, miss)",
    ["result"],
)
CACHE_HIT_RATIO = Gauge(
    "datatorag_answer_cache_hit_ratio", "Answer cache hits / look-ups since the process started"
)
CACHE_ENTRIES = Gauge("datatorag_answer_cache_entries", "Answers held in the cache")
