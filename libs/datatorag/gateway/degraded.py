"""The gateway without its embedder: searches fall back to BM25 alone and say so.

A hybrid search whose query embedding fails (the embedder service down, restarting, timing out)
is answered from BM25 with ``degraded: true`` in the response and one count of
``datatorag_gateway_degraded_total{reason}``, instead of a 503: a keyword search beats no search.
``/readyz`` keeps the gateway Ready and names the embedder under ``degraded``. A ``knn`` search
has nothing to fall back to and fails as before.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from prometheus_client import Counter

from datatorag.domain.errors import DependencyError, TransientError
from datatorag.ports import Embedder

DEGRADED = Counter(
    "datatorag_gateway_degraded_total",
    "Requests answered in a degraded mode (BM25 alone), by reason",
    ["reason"],
)
EMBEDDER_UNAVAILABLE = "embedder_unavailable"


class EmbedderDown(DependencyError):
    """The query embedding failed: what the gateway falls back from."""

    def __init__(self, detail: str) -> None:
        super().__init__("embedder", detail)


class GuardedEmbedder(Embedder):
    """The gateway's query embedder, its failures marked as ``EmbedderDown``."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.dim = inner.dim

    async def embed_documents(
        self, texts: Sequence[str], titles: Sequence[str | None] | None = None
    ) -> np.ndarray:
        return await self.inner.embed_documents(texts, titles)

    async def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        try:
            return await self.inner.embed_queries(texts)
        except (DependencyError, TransientError, OSError) as exc:
            raise EmbedderDown(str(exc)) from exc

    async def check(self) -> None:
        await self.inner.check()

    async def close(self) -> None:
        await self.inner.close()
