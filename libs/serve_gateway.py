"""The query gateway as its own service (production shape).

Query embeddings come from the embedder service over HTTP; on-demand syncs are forwarded to the
connector service (``DATATORAG_CONNECTOR_URL``) with the tenant of the caller's API key.
"""

from __future__ import annotations

import asyncio

import httpx

from libs.assembly import Components
from libs.config import Settings
from libs.errors import NotFound, TransientError
from libs.log import get_logger
from libs.runtime import UvicornServer, freeze_heap, install_stop_signals
from libs.serve import startup_check

log = get_logger(__name__)


def connector_sync_hook(base_url: str):
    client = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=10)

    async def on_sync(tenant: str, source_id: str) -> dict:
        try:
            resp = await client.post(f"/internal/sources/{tenant}/{source_id}/sync")
        except httpx.HTTPError as exc:
            raise TransientError(f"connector service unreachable at {base_url}: {exc}") from exc
        if resp.status_code == 404:
            raise NotFound(f"no source {source_id!r}")
        resp.raise_for_status()
        return resp.json()

    return on_sync, client


async def serve_gateway(settings: Settings) -> None:
    from libs.gateway.app import GatewayDeps, create_app

    c = Components(settings)
    try:
        index = await c.index()
        embedder = await c.embedder()
    except BaseException:
        await c.close()
        raise
    connector_url = settings.connector_url
    on_sync, client = connector_sync_hook(connector_url) if connector_url else (None, None)
    registry, blobstore = c.registry, c.blobstore  # built now, so the startup check covers them
    await startup_check(c, "query-gateway")
    app = create_app(GatewayDeps(settings=settings, index=index, embedder=embedder,
                                 registry=registry, blobstore=blobstore,
                                 readiness=c.readiness, on_sync=on_sync))
    http = UvicornServer(app, settings.gateway_host, settings.gateway_port)
    await http.start()
    grpc_server = await start_grpc(app, settings)
    freeze_heap()
    stop = asyncio.Event()
    install_stop_signals(stop)
    log.info("query gateway started", port=settings.gateway_port)
    await stop.wait()
    if grpc_server is not None:
        await grpc_server.stop(5)
    await http.stop()
    if client is not None:
        await client.aclose()
    await c.close()


async def start_grpc(app, settings: Settings):
    """gRPC next to REST, sharing its service, batcher and adapters (``DATATORAG_GRPC_PORT``)."""
    if settings.grpc_port is None:
        return None
    from libs.gateway.grpc_server import grpc_server_for_app

    server, port = grpc_server_for_app(app, f"{settings.gateway_host}:{settings.grpc_port}")
    await server.start()
    log.info("gRPC API started", port=port)
    return server
