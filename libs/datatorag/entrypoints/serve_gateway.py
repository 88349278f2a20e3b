"""The query gateway as its own service (production shape).

Query embeddings come from the embedder service over HTTP; on-demand syncs are forwarded to the
connector service (``DATATORAG_CONNECTOR_URL``) with the tenant of the caller's API key. Uploads
(``POST /v1/documents``) land in the tenant's prefix of the landing bucket
(``DATATORAG_UPLOADS_BUCKET``/``DATATORAG_UPLOADS_PREFIX``) and that tenant's ``uploads`` source
is synced at once, through the connector.
"""

from __future__ import annotations

import asyncio

from datatorag.bootstrap import Components, startup_check
from datatorag.bootstrap.gateway import (
    Gateway,
    build_gateway,
    connector_sync_hook,
    s3_upload_hook,
)
from datatorag.config import Settings
from datatorag.gateway.deps import GatewayDeps
from datatorag.gateway.edge import check_settings
from datatorag.observability.log import get_logger
from datatorag.runtime import UvicornServer, freeze_heap, install_stop_signals

log = get_logger(__name__)


async def serve_gateway(settings: Settings) -> None:
    check_settings(settings)  # a bad key or OIDC setting fails before any model loads
    c = Components(settings)
    try:
        index = await c.index()
        embedder = await c.embedder()
    except BaseException:
        await c.close()
        raise
    connector_url = settings.connector_url
    on_sync, client = (
        connector_sync_hook(connector_url, settings.service_token)
        if connector_url
        else (None, None)
    )
    registry, blobstore = c.registry, c.blobstore  # built now, so the startup check covers them
    on_upload = s3_upload_hook(settings, on_sync) if on_sync is not None else None
    await startup_check(c, "query-gateway")
    # from now on an embedder outage degrades searches to BM25 (gateway.degraded), it does not
    # take the API down
    c.readiness.optional.add("embedder")
    gw = build_gateway(
        GatewayDeps(
            settings=settings,
            index=index,
            embedder=embedder,
            registry=registry,
            blobstore=blobstore,
            readiness=c.readiness,
            on_sync=on_sync,
            on_upload=on_upload,
        )
    )
    http = UvicornServer(gw.app, settings.gateway_host, settings.gateway_port)
    await http.start()
    await start_grpc(gw)
    freeze_heap()
    stop = asyncio.Event()
    install_stop_signals(stop)
    log.info("query gateway started", port=settings.gateway_port)
    await stop.wait()
    await stop_grpc(gw)
    await http.stop()
    await gw.service.aclose()
    if client is not None:
        await client.aclose()
    await c.close()


async def start_grpc(gw: Gateway) -> None:
    if gw.grpc_server is not None:
        await gw.grpc_server.start()
        log.info("gRPC API started", port=gw.grpc_port)


async def stop_grpc(gw: Gateway) -> None:
    if gw.grpc_server is not None:
        await gw.grpc_server.stop(5)
