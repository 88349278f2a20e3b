"""The connector service: every configured source on its schedule, plus the stall reaper.

Sources come from the YAML file named by ``DATATORAG_SOURCES_FILE`` (see
``libs/datatorag/connectors/config.py``). On-demand syncs arrive on the service's own HTTP port
(``POST /internal/sources/{tenant}/{source_id}/sync``), which the gateway's
``POST /v1/sources/{id}/sync`` calls with the tenant of the caller's API key.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException

from datatorag.bootstrap import Components, startup_check
from datatorag.bootstrap.connector import SingletonReaper, build_scheduler, with_upload_sources
from datatorag.config import Mode, Settings
from datatorag.connectors.config import load_sources
from datatorag.connectors.scheduler import Scheduler
from datatorag.domain.errors import NotFound
from datatorag.observability.log import get_logger
from datatorag.runtime import (
    UvicornServer,
    add_health_routes,
    freeze_heap,
    install_stop_signals,
    require_service_token,
)

log = get_logger(__name__)


def connector_app(scheduler: Scheduler, service_token: str | None = None) -> FastAPI:
    """``/internal/...`` refuse (401) a call without the shared ``X-Service-Token`` when one is
    configured (always outside embedded mode)."""
    app = FastAPI(title="DatatoRAG connector", docs_url=None, redoc_url=None, openapi_url=None)
    # the guard covers /internal only: /healthz, /readyz and /metrics (added to this app by the
    # caller) answer the kubelet's probes and Prometheus, which send no token
    internal = APIRouter(dependencies=[Depends(require_service_token(service_token))])

    @internal.post("/internal/sources/{tenant}/{source_id}/sync", status_code=202)
    async def sync(tenant: str, source_id: str) -> dict[str, Any]:
        try:
            return scheduler.trigger(tenant, source_id)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from exc

    @internal.get("/internal/sources")
    async def sources() -> list[dict[str, Any]]:
        return scheduler.status()

    app.include_router(internal)
    return app


async def serve_connector(settings: Settings) -> None:
    if settings.mode is not Mode.EMBEDDED and settings.service_token is None:
        raise SystemExit("connector: set DATATORAG_SERVICE_TOKEN (the gateway sends it)")
    if not settings.sources_file:
        raise SystemExit("connector: set DATATORAG_SOURCES_FILE to a sources YAML file")
    c = Components(settings)
    config = with_upload_sources(load_sources(settings.sources_file), settings)
    scheduler = await build_scheduler(c, config)
    reaper = SingletonReaper(c, interval_s=max(30.0, settings.stalled_after_s / 2))
    await startup_check(c, "connector")
    token = settings.service_token.get_secret_value() if settings.service_token else None
    app = connector_app(scheduler, token)
    add_health_routes(app, c.readiness)
    http = UvicornServer(app, settings.gateway_host, settings.health_port or 9100)
    await http.start()
    await scheduler.start()
    reaper.start()
    freeze_heap()
    stop = asyncio.Event()
    install_stop_signals(stop)
    log.info(
        "connector started", sources=[f"{s['tenant']}/{s['source']}" for s in scheduler.status()]
    )
    await stop.wait()
    await reaper.stop()
    await scheduler.stop()
    await http.stop()
    await c.close()
