"""Embedder adapters under test: the in-process model, and the HTTP service in front of it."""

from __future__ import annotations

import socket

import pytest

from datatorag.config import EmbeddingSettings
from datatorag.embedding.http import HttpEmbedder
from datatorag.embedding.local import LocalEmbedder
from datatorag.embedding.service import create_embed_app
from datatorag.runtime import UvicornServer

_local: LocalEmbedder | None = None


def shared_local_embedder() -> LocalEmbedder:
    """One model per test session: loading it is the slow part, and it is stateless."""
    global _local
    if _local is None:
        _local = LocalEmbedder(EmbeddingSettings())
    return _local


class _Unclosable(LocalEmbedder):
    def __init__(self, inner: LocalEmbedder) -> None:
        self.__dict__.update(inner.__dict__)

    async def close(self) -> None:  # the shared engine outlives each test
        pass


async def make_local_embedder(request: pytest.FixtureRequest, tmp_path) -> LocalEmbedder:
    return _Unclosable(shared_local_embedder())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _ServedHttpEmbedder(HttpEmbedder):
    def __init__(self, server: UvicornServer, url: str) -> None:
        super().__init__(url)
        self._server = server

    async def close(self) -> None:
        await super().close()
        await self._server.stop()


async def make_http_embedder(request: pytest.FixtureRequest, tmp_path) -> HttpEmbedder:
    port = _free_port()
    server = UvicornServer(
        create_embed_app(_Unclosable(shared_local_embedder()), 2.0), "127.0.0.1", port
    )
    await server.start()
    return await _ServedHttpEmbedder(server, f"http://127.0.0.1:{port}").connect()
