"""A gateway on real embedded stores holding the sample corpus, in-process: for answer tests,
the answer benchmarks and ``datatorag eval`` without a running server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from fastapi import FastAPI

from datatorag.adapters.embedded.lancedb_index import LanceDbIndex
from datatorag.adapters.embedded.sqlite_registry import SqliteRegistry
from datatorag.answering.builder import ProviderFactory
from datatorag.config import Settings
from datatorag.domain.models import ChunkRecord
from datatorag.gateway import GatewayDeps, create_app
from datatorag.gateway.service import QueryService
from datatorag.ports import Embedder
from datatorag.testing.corpus import index_folder


@dataclass
class SampleStack:
    settings: Settings
    index: LanceDbIndex
    registry: SqliteRegistry
    embedder: Embedder
    chunks: dict[str, list[ChunkRecord]]  # tenant -> its chunk records

    def app(self, providers: ProviderFactory | None = None, **settings: object) -> FastAPI:
        """A REST app (with its own ``QueryService``) over these stores."""
        s = self.settings.model_copy(update=settings) if settings else self.settings
        deps = GatewayDeps(
            settings=s,
            index=self.index,
            embedder=self.embedder,
            registry=self.registry,
            answer_providers=providers,
        )
        return create_app(deps, QueryService(deps))

    @staticmethod
    def client(app: FastAPI, key: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://gateway",
            headers={"Authorization": f"Bearer {key}"},
            timeout=120,
        )


@asynccontextmanager
async def sample_stack(
    root: Path,
    embedder: Embedder,
    *,
    tenants: dict[str, dict[str, bytes] | None] | None = None,
    without_corpus: frozenset[str] = frozenset(),
    settings: Settings | None = None,
) -> AsyncIterator[SampleStack]:
    """Each tenant gets the sample corpus (unless in ``without_corpus``) plus its ``extra``
    documents (name -> bytes); the API keys are ``key-{tenant}``."""
    tenants = tenants or {"acme": None}
    settings = settings or Settings(
        data_dir=root,
        api_keys=",".join(f"key-{t}={t}" for t in tenants),
        # evaluations and benchmarks send bursts through one key: the limits stay in the path,
        # far above what they send
        rate_limit={"per_s": 1e9, "burst": 1e9},
    )
    index = LanceDbIndex(root / "lancedb", dim=embedder.dim, table=f"chunks_sample_{embedder.dim}")
    await index.ensure()
    registry = SqliteRegistry(root / "registry.sqlite3")
    try:
        empty = root / "empty-corpus"
        empty.mkdir(exist_ok=True)
        chunks = {
            tenant: await index_folder(
                index,
                embedder,
                tenant,
                empty if tenant in without_corpus else None,
                registry=registry,
                extra=extra,
            )
            for tenant, extra in tenants.items()
        }
        yield SampleStack(settings, index, registry, embedder, chunks)
    finally:
        await registry.close()
        await index.close()
