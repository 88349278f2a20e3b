"""Embedder adapter that calls the embedder service over HTTP (production)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from datatorag.domain.errors import DependencyError, TransientError
from datatorag.ports.embedder import Embedder
from datatorag.runtime import SERVICE_TOKEN_HEADER

_BATCH = 512  # texts per request; the service re-batches by tokens


class HttpEmbedder(Embedder):
    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 120.0,
        service_token: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        # the embedder service refuses calls without the shared token (DATATORAG_SERVICE_TOKEN)
        headers = {SERVICE_TOKEN_HEADER: service_token} if service_token else {}
        self._client = httpx.AsyncClient(
            base_url=self.base_url, timeout=timeout_s, headers=headers, transport=transport
        )
        self.model_id = ""
        self.dim = 0

    async def connect(self, wait_s: float = 0.0) -> HttpEmbedder:
        """Learn model id and dimension from the service (the index dimension follows the model).

        ``wait_s``: keep trying this long while the service is unreachable or not serving yet (it
        loads its model; pods start together), instead of failing at once."""
        deadline = time.monotonic() + wait_s
        delay = 0.5
        while True:
            try:
                resp = await self._client.get("/v1/model")
                if resp.status_code in (401, 403):
                    # a wrong or missing token does not heal by waiting: say so at once
                    raise DependencyError(
                        "embedder",
                        f"{self.base_url} refused this service's DATATORAG_SERVICE_TOKEN"
                        f" ({resp.status_code}): it must be the embedder's",
                    )
                resp.raise_for_status()
                break
            except httpx.HTTPError as exc:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise DependencyError(
                        "embedder", f"{self.base_url} unreachable: {exc}"
                    ) from exc
                await asyncio.sleep(min(delay, remaining))
                delay = min(delay * 2, 5.0)
        info = resp.json()
        self.model_id, self.dim = info["model"], int(info["dim"])
        return self

    async def _embed(
        self, kind: str, texts: Sequence[str], titles: Sequence[str | None] | None = None
    ) -> np.ndarray:
        if not self.dim:
            await self.connect()
        out = []
        for i in range(0, len(texts), _BATCH):
            body: dict[str, Any] = {"kind": kind, "texts": list(texts[i : i + _BATCH])}
            if titles is not None:
                body["titles"] = list(titles[i : i + _BATCH])
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(TransientError),
                wait=wait_exponential_jitter(multiplier=0.2, max=5),
                stop=stop_after_attempt(5),
                reraise=True,
            ):
                with attempt:
                    try:
                        resp = await self._client.post("/v1/embed", json=body)
                    except httpx.TransportError as exc:
                        raise TransientError(f"embedder unreachable: {exc}") from exc
                    if resp.status_code >= 500 or resp.status_code == 429:
                        raise TransientError(f"embedder returned {resp.status_code}")
                    resp.raise_for_status()
            out.append(np.asarray(resp.json()["vectors"], dtype=np.float32))
        if not out:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate(out)

    async def embed_documents(
        self, texts: Sequence[str], titles: Sequence[str | None] | None = None
    ) -> np.ndarray:
        return await self._embed("document", texts, titles)

    async def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return await self._embed("query", texts)

    async def check(self) -> None:
        await self.connect()

    async def close(self) -> None:
        await self._client.aclose()
