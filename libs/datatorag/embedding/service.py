"""HTTP API of the embedder service: ``POST /v1/embed`` with micro-batching.

Concurrent query-time requests arriving within ``microbatch_wait_ms`` of each other are encoded
in one forward pass; each caller gets its own rows back.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import Depends, FastAPI, HTTPException
from pydantic import BaseModel, Field

from datatorag.embedding.local import LocalEmbedder
from datatorag.runtime import require_service_token

MAX_TEXTS = 2048
MAX_CHARS = 100_000


class EmbedRequest(BaseModel):
    model_config = {"extra": "forbid"}

    kind: Literal["query", "document"] = "query"
    texts: list[str] = Field(..., min_length=1, max_length=MAX_TEXTS)
    titles: list[str | None] | None = None


class EmbedResponse(BaseModel):
    model: str
    dim: int
    vectors: list[list[float]]


@dataclass
class _Pending:
    kind: str
    inputs: list[str]
    future: asyncio.Future[Any] = field(repr=False)


class MicroBatcher:
    """Collects small requests for a few milliseconds and encodes them together."""

    def __init__(self, embedder: LocalEmbedder, wait_ms: float, max_texts: int = 256) -> None:
        self.embedder = embedder
        self.wait_s = wait_ms / 1000
        self.max_texts = max_texts
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="embed-microbatcher")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def submit(self, kind: str, inputs: list[str]) -> Any:
        fut = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(kind, inputs, fut))
        return await fut

    async def _loop(self) -> None:
        while True:
            first = await self._queue.get()
            batch = [first]
            total = len(first.inputs)
            deadline = asyncio.get_running_loop().time() + self.wait_s
            while total < self.max_texts:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                try:
                    nxt = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
                batch.append(nxt)
                total += len(nxt.inputs)
            inputs = [x for p in batch for x in p.inputs]
            try:
                vectors = await self.embedder._run(inputs)
            except Exception as exc:  # noqa: BLE001 - every waiter gets the failure
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(exc)
                continue
            offset = 0
            for p in batch:
                if not p.future.done():
                    p.future.set_result(vectors[offset : offset + len(p.inputs)])
                offset += len(p.inputs)


def create_embed_app(
    embedder: LocalEmbedder, wait_ms: float, *, service_token: str | None = None
) -> FastAPI:
    """``/v1/embed`` and ``/v1/model`` refuse (401) a call without the shared
    ``X-Service-Token`` when one is configured (always outside embedded mode)."""
    batcher = MicroBatcher(embedder, wait_ms)
    guard = [Depends(require_service_token(service_token))]

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="DatatoRAG embedder", version="1", lifespan=lifespan)

    @app.get("/v1/model", dependencies=guard)
    async def model_info() -> dict[str, Any]:
        return {"model": embedder.model_id, "dim": embedder.dim, "max_seq": embedder.max_seq}

    @app.post("/v1/embed", response_model=EmbedResponse, dependencies=guard)
    async def embed(req: EmbedRequest) -> EmbedResponse:
        if any(len(t) > MAX_CHARS for t in req.texts):
            raise HTTPException(413, f"each text must be at most {MAX_CHARS} characters")
        if req.titles is not None and len(req.titles) != len(req.texts):
            raise HTTPException(422, "titles must have the same length as texts")
        engine = embedder.engine
        if req.kind == "query":
            inputs = engine.query_inputs(req.texts)
        else:
            inputs = engine.document_inputs(req.texts, req.titles)
        vectors = await batcher.submit(req.kind, inputs)
        return EmbedResponse(model=embedder.model_id, dim=embedder.dim, vectors=vectors.tolist())

    app.state.batcher = batcher
    return app
