"""In-process embedder (embedded mode, and the engine behind the embedder service)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from datatorag.config import EmbeddingSettings
from datatorag.domain.errors import DependencyError
from datatorag.embedding.backend import create_engine
from datatorag.embedding.batching import Engine
from datatorag.ports.embedder import Embedder


class LocalEmbedder(Embedder):
    """Runs the model in one dedicated thread so the event loop never blocks on a forward pass."""

    def __init__(self, settings: EmbeddingSettings, engine: Engine | None = None) -> None:
        self.engine = engine or create_engine(settings)
        self.model_id = self.engine.model_id
        self.dim = self.engine.dim
        self.max_seq = self.engine.max_seq
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed")

    async def _run(self, inputs: list[str]) -> np.ndarray:
        loop = asyncio.get_running_loop()
        vectors, _ = await loop.run_in_executor(self._pool, self.engine.encode, inputs)
        return vectors

    async def embed_documents(
        self, texts: Sequence[str], titles: Sequence[str | None] | None = None
    ) -> np.ndarray:
        return await self._run(self.engine.document_inputs(texts, titles))

    async def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return await self._run(self.engine.query_inputs(texts))

    async def check(self) -> None:
        try:
            vec = await self.embed_queries(["readiness probe"])
        except Exception as exc:  # any model failure is a dependency error
            raise DependencyError("embedder", f"model {self.model_id} failed: {exc}") from exc
        if vec.shape != (1, self.dim):
            raise DependencyError("embedder", f"unexpected output shape {vec.shape}")

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
