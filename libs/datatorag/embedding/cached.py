"""An ``Embedder`` that asks an ``EmbeddingCache`` first: a chunk whose (title, text) the same
model embedded before is not embedded again (re-syncs, re-chunkings that reproduce a chunk,
reindexes, redriven messages).

The key is the SHA-256 of title and text, under a namespace of model id and dimension; the title
is part of it because EmbeddingGemma's document prompt includes it. Queries are never cached.
The cache is an optimisation: when it fails, every text is embedded and a warning is logged.
The inner embedder and the cache belong to the caller, who closes them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from datatorag.observability.log import get_logger
from datatorag.ports.embedder import Embedder
from datatorag.ports.embedding_cache import EmbeddingCache

log = get_logger(__name__)


def cache_key(text: str, title: str | None) -> str:
    data = f"{title or ''}\x00{text}".encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()


class CachedEmbedder(Embedder):
    def __init__(self, inner: Embedder, cache: EmbeddingCache) -> None:
        self.inner = inner
        self.cache = cache
        self.model_id = inner.model_id
        self.dim = inner.dim
        self.namespace = f"{inner.model_id}:{inner.dim}"
        self.hits = 0
        self.misses = 0

    async def embed_documents(
        self, texts: Sequence[str], titles: Sequence[str | None] | None = None
    ) -> np.ndarray:
        n = len(texts)
        titles = list(titles) if titles is not None else [None] * n
        keys = [cache_key(t, ti) for t, ti in zip(texts, titles, strict=True)]
        try:
            found = await self.cache.get_many(self.namespace, keys)
        except Exception as exc:  # noqa: BLE001 - an optimisation must not fail the embed
            log.warning("embedding cache read failed; embedding everything", error=str(exc))
            found = {}
        found = {k: v for k, v in found.items() if v.shape == (self.dim,)}
        # each distinct missing text once, even when a batch repeats it
        todo: dict[str, int] = {}
        for i, k in enumerate(keys):
            if k not in found and k not in todo:
                todo[k] = i
        out = np.empty((n, self.dim), dtype=np.float32)
        if todo:
            idx = list(todo.values())
            fresh = await self.inner.embed_documents(
                [texts[i] for i in idx], [titles[i] for i in idx]
            )
            new = {k: fresh[j] for j, k in enumerate(todo)}
            try:
                await self.cache.put_many(self.namespace, new)
            except Exception as exc:  # noqa: BLE001
                log.warning("embedding cache write failed", error=str(exc))
            found.update(new)
        for i, k in enumerate(keys):
            out[i] = found[k]
        self.hits += n - len(todo)
        self.misses += len(todo)
        return out

    async def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return await self.inner.embed_queries(texts)

    async def check(self) -> None:
        await self.inner.check()
        await self.cache.check()

    # close(): the inner embedder and the cache are the caller's to close
