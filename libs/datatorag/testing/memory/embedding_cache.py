"""``EmbeddingCache`` in a dict (tests)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import numpy as np

from datatorag.ports.embedding_cache import EmbeddingCache


class MemoryEmbeddingCache(EmbeddingCache):
    def __init__(self) -> None:
        self._vectors: dict[tuple[str, str], np.ndarray] = {}
        self.gets = self.puts = 0  # how many keys were asked for / stored

    async def get_many(self, model: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
        await asyncio.sleep(0)
        self.gets += len(keys)
        return {k: self._vectors[(model, k)].copy() for k in keys if (model, k) in self._vectors}

    async def put_many(self, model: str, vectors: Mapping[str, np.ndarray]) -> None:
        await asyncio.sleep(0)
        self.puts += len(vectors)
        for k, v in vectors.items():
            self._vectors[(model, k)] = np.array(v, dtype=np.float32)

    async def check(self) -> None:
        await asyncio.sleep(0)
