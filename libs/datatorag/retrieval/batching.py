"""Query-embedding batching for the gateway: concurrent queries share one forward pass.

No timer: the first query is encoded at once (no added latency when idle); queries that arrive
while a forward pass is running wait for it to finish and then go together in the next one. Under
load this turns N sequential model calls into a few batched ones, which is what keeps query
embedding from being the gateway's bottleneck at 10-100 concurrent clients.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np

from datatorag.ports import Embedder


class QueryBatcher(Embedder):
    """Wraps an ``Embedder``; ``embed_queries`` calls are coalesced, documents pass through."""

    def __init__(self, inner: Embedder, *, max_batch: int = 64) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self.inner = inner
        self.model_id = inner.model_id
        self.dim = inner.dim
        self.max_batch = max_batch
        self._pending: list[tuple[list[str], asyncio.Future[np.ndarray]]] = []
        self._drainer: asyncio.Task[None] | None = None
        self.batches = 0  # forward passes issued (observability, tests)

    async def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._pending.append((texts, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain(), name="query-batcher")
        return await future

    async def _drain(self) -> None:
        while self._pending:
            batch: list[tuple[list[str], asyncio.Future[np.ndarray]]] = []
            size = 0
            while self._pending and (
                not batch or size + len(self._pending[0][0]) <= self.max_batch
            ):
                texts, future = self._pending.pop(0)
                if future.done():  # the caller went away (cancelled)
                    continue
                batch.append((texts, future))
                size += len(texts)
            if not batch:
                continue
            self.batches += 1
            try:
                vectors = await self.inner.embed_queries([t for texts, _ in batch for t in texts])
            except Exception as exc:  # noqa: BLE001 - every waiter of this batch gets the error
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            offset = 0
            for texts, future in batch:
                if not future.done():
                    future.set_result(vectors[offset : offset + len(texts)])
                offset += len(texts)

    async def embed_documents(
        self, texts: Sequence[str], titles: Sequence[str | None] | None = None
    ) -> np.ndarray:
        return await self.inner.embed_documents(texts, titles)

    async def check(self) -> None:
        await self.inner.check()

    async def close(self) -> None:
        if self._drainer is not None and not self._drainer.done():
            self._drainer.cancel()
            await asyncio.gather(self._drainer, return_exceptions=True)
        for _, future in self._pending:
            if not future.done():
                future.cancel()
        self._pending.clear()
