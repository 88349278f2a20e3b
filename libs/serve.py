"""Long-running service entry points: ``datatorag serve <service>`` and ``datatorag up``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from libs.assembly import Components, embedder_worker, indexer_worker, parser_worker
from libs.config import Settings
from libs.log import configure, get_logger
from libs.pipeline.worker import Worker
from libs.runtime import (
    UvicornServer,
    add_health_routes,
    check_all_or_exit,
    health_app,
    install_stop_signals,
    worker_liveness,
)

log = get_logger(__name__)

WORKER_SERVICES: dict[str, Callable[[Components], Awaitable[Worker]]] = {
    "parser": parser_worker,
    "embedder": embedder_worker,
    "indexer": indexer_worker,
}
SERVICES = ("connector", "parser", "embedder", "indexer", "query-gateway")


def liveness_max_idle(settings: Settings) -> float:
    # A loop that has not come back from receive/handle for this long is stuck.
    return max(120.0, 3 * settings.queues.visibility_timeout_s)


async def serve_worker(name: str, settings: Settings) -> None:
    """One pipeline worker service, as its own process (production shape)."""
    c = Components(settings)
    worker = await WORKER_SERVICES[name](c)
    await check_all_or_exit(c.readiness, name)
    stop = asyncio.Event()
    install_stop_signals(stop)
    liveness = worker_liveness([worker], liveness_max_idle(settings))
    if name == "embedder":
        from libs.embedding.local import LocalEmbedder
        from libs.embedding.service import create_embed_app

        emb = await c.embedder(in_process=True)
        assert isinstance(emb, LocalEmbedder)
        app = create_embed_app(emb, settings.embedding.microbatch_wait_ms)
        add_health_routes(app, c.readiness, liveness)
        http = UvicornServer(app, settings.gateway_host, settings.embedder_port)
    else:
        http = UvicornServer(health_app(c.readiness, liveness), settings.gateway_host,
                             settings.health_port or 9100)
    await http.start()
    worker.start()
    log.info("service started", service=name)
    await stop.wait()
    log.info("stopping: finishing or releasing in-flight messages", service=name)
    await worker.stop()
    await http.stop()
    await c.close()
    log.info("service stopped", service=name)


def run(name: str, settings: Settings | None = None) -> None:
    settings = settings or Settings()
    configure(settings.log_level, settings.log_format)
    if name in WORKER_SERVICES:
        asyncio.run(serve_worker(name, settings))
    elif name == "connector":
        from libs.serve_connector import serve_connector

        asyncio.run(serve_connector(settings))
    elif name in ("query-gateway", "query_gateway", "gateway"):
        from libs.serve_gateway import serve_gateway

        asyncio.run(serve_gateway(settings))
    else:
        raise SystemExit(f"unknown service {name!r}; choose one of {', '.join(SERVICES)}")
