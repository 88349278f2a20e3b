"""Embedder adapters under test: the in-process model on torch and on ONNX Runtime, and the HTTP
service in front of it."""

from __future__ import annotations

import socket

import pytest

from datatorag.config import EmbeddingSettings
from datatorag.embedding.http import HttpEmbedder
from datatorag.embedding.local import LocalEmbedder
from datatorag.embedding.service import create_embed_app
from datatorag.runtime import UvicornServer

_shared: dict[str, LocalEmbedder] = {}


def shared_local_embedder(backend: str = "auto") -> LocalEmbedder:
    """One model per backend per test session (``auto``: what the product picks on this
    machine): loading it is the slow part, and it is stateless."""
    if backend not in _shared:
        _shared[backend] = LocalEmbedder(EmbeddingSettings(backend=backend))  # type: ignore[arg-type]
        assert backend == "auto" or _shared[backend].engine.backend == backend
    return _shared[backend]


class _Unclosable(LocalEmbedder):
    def __init__(self, inner: LocalEmbedder) -> None:
        self.__dict__.update(inner.__dict__)

    async def close(self) -> None:  # the shared engine outlives each test
        pass


async def make_local_embedder(request: pytest.FixtureRequest, tmp_path) -> LocalEmbedder:
    return _Unclosable(shared_local_embedder("torch"))


async def make_onnx_embedder(request: pytest.FixtureRequest, tmp_path) -> LocalEmbedder:
    return _Unclosable(shared_local_embedder("onnx"))


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
