"""Long-running service entry points: ``datatorag serve <service>`` and ``datatorag up``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from datatorag.bootstrap import (
    Components,
    embedder_worker,
    indexer_worker,
    parser_worker,
    startup_check,
)
from datatorag.config import Mode, Settings
from datatorag.domain.errors import DependencyError, TransientError
from datatorag.observability.log import configure, get_logger
from datatorag.pipeline.worker import Worker
from datatorag.runtime import (
    UvicornServer,
    add_health_routes,
    exit_process,
    freeze_heap,
    health_app,
    install_stop_signals,
    run_service,
    worker_liveness,
)

log = get_logger(__name__)

WORKER_SERVICES: dict[str, Callable[[Components], Awaitable[Worker]]] = {
    "parser": parser_worker,
    "embedder": embedder_worker,
    "indexer": indexer_worker,
}
SERVICES = ("connector", "parser", "embedder", "indexer", "query-gateway")
EMBED_KEEP_ALIVE_S = 65


def liveness_max_idle(settings: Settings) -> float:
    # A loop that has not come back from receive/handle for this long is stuck.
    return max(120.0, 3 * settings.queues.visibility_timeout_s)


async def serve_worker(name: str, settings: Settings) -> None:
    """One pipeline worker service, as its own process (production shape)."""
    c = Components(settings)
    try:
        worker = await WORKER_SERVICES[name](c)
    except BaseException:
        await c.close()
        raise
    await startup_check(c, name)
    stop = asyncio.Event()
    install_stop_signals(stop)
    liveness = worker_liveness([worker], liveness_max_idle(settings))
    if name == "embedder":
        from datatorag.embedding.local import LocalEmbedder
        from datatorag.embedding.service import create_embed_app

        emb = await c.embedder(in_process=True)
        assert isinstance(emb, LocalEmbedder)
        token = settings.service_token.get_secret_value() if settings.service_token else None
        app = create_embed_app(emb, settings.embedding.microbatch_wait_ms, service_token=token)
        add_health_routes(app, c.readiness, liveness)
        http = UvicornServer(app, settings.gateway_host, settings.embedder_port)
        # Callers (HttpEmbedder) keep idle connections for httpx's 5 s; uvicorn's default keep-alive
        # is also 5 s, so a request could meet a connection the server is just closing
        # ("Server disconnected without sending a response"). The server must outlast the client.
        http.server.config.timeout_keep_alive = EMBED_KEEP_ALIVE_S
    else:
        http = UvicornServer(
            health_app(c.readiness, liveness), settings.gateway_host, settings.health_port or 9100
        )
    await http.start()
    worker.start()
    freeze_heap()
    log.info("service started", service=name)
    await stop.wait()
    log.info("stopping: finishing or releasing in-flight messages", service=name)
    await worker.stop()
    await http.stop()
    await c.close()
    log.info("service stopped", service=name)


# services that serve or call the internal endpoints guarded by DATATORAG_SERVICE_TOKEN (the
# indexer opens the index, whose dimension it learns from the embedder's /v1/model)
TOKEN_SERVICES = frozenset(
    {"connector", "embedder", "indexer", "query-gateway", "query_gateway", "gateway"}
)


def run(name: str, settings: Settings | None = None) -> None:
    settings = settings or Settings()
    configure(settings.log_level, settings.log_format)
    token_needed = name in TOKEN_SERVICES and settings.mode is not Mode.EMBEDDED
    if token_needed and settings.service_token is None:
        raise SystemExit(
            f"{name}: cannot start: set DATATORAG_SERVICE_TOKEN (the shared secret of the"
            " connector's and embedder's internal endpoints)"
        )
    try:
        _run(name, settings)
    except (DependencyError, TransientError) as exc:
        # Raised while the service builds its parts (an index of another dimension, an
        # unreachable node): once running, workers handle these per message.
        log.error("dependency not ready", service=name, detail=str(exc))
        raise SystemExit(f"{name}: cannot start: {exc}") from None
    exit_process(0)  # stopped cleanly; see exit_process for why teardown is skipped


def _run(name: str, settings: Settings) -> None:
    if name in WORKER_SERVICES:
        run_service(serve_worker(name, settings))
    elif name == "connector":
        from datatorag.entrypoints.serve_connector import serve_connector

        run_service(serve_connector(settings))
    elif name in ("query-gateway", "query_gateway", "gateway"):
        from datatorag.entrypoints.serve_gateway import serve_gateway

        run_service(serve_gateway(settings))
    else:
        raise SystemExit(f"unknown service {name!r}; choose one of {', '.join(SERVICES)}")
