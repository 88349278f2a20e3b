"""The connector service: every configured source on its schedule, plus the stall reaper.

Sources come from the YAML file named by ``DATATORAG_SOURCES_FILE`` (see
``libs/connectors/config.py``). On-demand syncs arrive on the service's own HTTP port
(``POST /internal/sources/{tenant}/{source_id}/sync``), which the gateway's
``POST /v1/sources/{id}/sync`` calls with the tenant of the caller's API key.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from fastapi import FastAPI, HTTPException

from libs.assembly import Components
from libs.config import Settings
from libs.connectors.builder import build_schedules
from libs.connectors.config import SourcesConfig, load_sources, parse_sources
from libs.connectors.scheduler import Scheduler
from libs.connectors.secrets import SecretResolver
from libs.connectors.sync import default_owner
from libs.errors import NotFound
from libs.log import get_logger
from libs.pipeline.reaper import StallReaper
from libs.provisioning import index_shape
from libs.runtime import (
    UvicornServer,
    add_health_routes,
    freeze_heap,
    install_stop_signals,
)
from libs.serve import startup_check

log = get_logger(__name__)


def folder_sources(tenant: str, folder: Path, interval_s: float, source_id: str,
                   exclude: list[str] | None = None,
                   uploads: tuple[Path, list[str]] | None = None) -> SourcesConfig:
    """``datatorag up`` without a sources file: one folder for ``tenant``, and, when ``uploads`` is
    given as (landing root, tenants), each tenant's upload folder as its ``uploads`` source."""
    import json

    from libs.uploads import UPLOADS_SOURCE

    tenants: dict[str, list[dict]] = {tenant: [{
        "id": source_id, "type": "folder", "path": str(folder), "interval_s": interval_s,
        "exclude": exclude or [],
    }]}
    if uploads:
        root, names = uploads
        for name in names:
            (root / name).mkdir(parents=True, exist_ok=True)
            tenants.setdefault(name, []).append({
                "id": UPLOADS_SOURCE, "type": "folder", "path": str(root / name),
                "interval_s": max(interval_s, 300.0)})
    doc = {"tenants": {t: {"sources": s} for t, s in tenants.items()}}
    return parse_sources(json.dumps(doc), origin=f"folder {folder}")


async def build_scheduler(c: Components, config: SourcesConfig) -> Scheduler:
    s = c.settings
    resolver = SecretResolver(environ=os.environ, aws_region=s.aws.region,
                              aws_endpoint_url=os.environ.get("AWS_ENDPOINT_URL"))
    scheduler = Scheduler(registry=c.registry, blobstore=c.blobstore,
                          parse_queue=c.queue("parse"), settings=s, initial_delay=False)
    scheduler.add_all(await build_schedules(config, resolver))
    return scheduler


class SingletonReaper:
    """One stall sweep at a time across replicas (a registry lease), every ``interval_s``."""

    def __init__(self, c: Components, interval_s: float) -> None:
        model_id, dim = index_shape(c.settings)
        self.c = c
        self.reaper = StallReaper(
            c.registry, c.blobstore, {n: c.queue(n) for n in ("parse", "embed", "index")},
            stalled_after_s=c.settings.stalled_after_s, model_id=model_id, dim=dim)
        self.interval_s = interval_s
        self.owner = default_owner()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="stall-reaper")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                if await self.c.registry.acquire_lease("stall-reaper", self.owner, self.interval_s * 2):
                    await self.reaper.sweep()
            except Exception:  # the next round tries again
                log.exception("stall sweep failed")


def connector_app(scheduler: Scheduler) -> FastAPI:
    app = FastAPI(title="DatatoRAG connector", docs_url=None, redoc_url=None)

    @app.post("/internal/sources/{tenant}/{source_id}/sync", status_code=202)
    async def sync(tenant: str, source_id: str) -> dict:
        try:
            return scheduler.trigger(tenant, source_id)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from exc

    @app.get("/internal/sources")
    async def sources() -> list[dict]:
        return scheduler.status()

    return app


async def serve_connector(settings: Settings) -> None:
    if not settings.sources_file:
        raise SystemExit("connector: set DATATORAG_SOURCES_FILE to a sources YAML file")
    c = Components(settings)
    config = load_sources(settings.sources_file)
    scheduler = await build_scheduler(c, config)
    reaper = SingletonReaper(c, interval_s=max(30.0, settings.stalled_after_s / 2))
    await startup_check(c, "connector")
    app = connector_app(scheduler)
    add_health_routes(app, c.readiness)
    http = UvicornServer(app, settings.gateway_host, settings.health_port or 9100)
    await http.start()
    await scheduler.start()
    reaper.start()
    freeze_heap()
    stop = asyncio.Event()
    install_stop_signals(stop)
    log.info("connector started", sources=[f"{s['tenant']}/{s['source']}" for s in scheduler.status()])
    await stop.wait()
    await reaper.stop()
    await scheduler.stop()
    await http.stop()
    await c.close()
