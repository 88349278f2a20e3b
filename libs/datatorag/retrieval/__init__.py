"""Query-time retrieval: hybrid search (k-NN + BM25 fused by RRF) and LLM context building."""

from datatorag.retrieval.context import Citation, Context, build_context
from datatorag.retrieval.hybrid import Mode, search
from datatorag.retrieval.rrf import DEFAULT_RRF_K, rrf_fuse

__all__ = [
    "DEFAULT_RRF_K",
    "Citation",
    "Context",
    "Mode",
    "build_context",
    "rrf_fuse",
    "search",
]
