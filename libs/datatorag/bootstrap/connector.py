"""The connector's parts: sources (a sources file, or one folder for ``datatorag up``), the
scheduler that syncs them, and the stall reaper that one replica at a time runs."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from datatorag.bootstrap.components import Components
from datatorag.bootstrap.gateway import UPLOADS_SOURCE
from datatorag.bootstrap.provisioning import index_shape
from datatorag.config import Settings
from datatorag.connectors.builder import build_schedules
from datatorag.connectors.config import SourcesConfig, parse_sources
from datatorag.connectors.scheduler import Scheduler
from datatorag.connectors.secrets import SecretResolver
from datatorag.connectors.sync import default_owner
from datatorag.observability.log import get_logger
from datatorag.pipeline.reaper import StallReaper

log = get_logger(__name__)


def folder_sources(
    tenant: str,
    folder: Path,
    interval_s: float,
    source_id: str,
    exclude: list[str] | None = None,
    uploads: tuple[Path, list[str]] | None = None,
) -> SourcesConfig:
    """``datatorag up`` without a sources file: one folder for ``tenant``, and, when ``uploads`` is
    given as (landing root, tenants), each tenant's upload folder as its ``uploads`` source."""
    tenants: dict[str, list[dict[str, Any]]] = {
        tenant: [
            {
                "id": source_id,
                "type": "folder",
                "path": str(folder),
                "interval_s": interval_s,
                "exclude": exclude or [],
            }
        ]
    }
    if uploads:
        root, names = uploads
        for name in names:
            (root / name).mkdir(parents=True, exist_ok=True)
            tenants.setdefault(name, []).append(
                {
                    "id": UPLOADS_SOURCE,
                    "type": "folder",
                    "path": str(root / name),
                    "interval_s": max(interval_s, 300.0),
                    "upload_audience": True,  # POST /v1/documents' audience field
                }
            )
    doc = {"tenants": {t: {"sources": s} for t, s in tenants.items()}}
    return parse_sources(json.dumps(doc), origin=f"folder {folder}")


def with_upload_sources(config: SourcesConfig, settings: Settings) -> SourcesConfig:
    """Production uploads land in ``s3://{uploads_bucket}/{uploads_prefix}{tenant}/`` (the
    gateway's ``S3Landing``); each tenant of the sources file gets that prefix as its ``uploads``
    source unless the file declares one itself, so the gateway's sync after an upload finds it."""
    bucket = settings.uploads_bucket
    if not bucket:
        return config
    doc = config.model_dump(mode="json", exclude_unset=True)
    tenants = doc.setdefault("tenants", {})
    for tenant in config.tenants:
        sources = tenants.setdefault(tenant, {}).setdefault("sources", [])
        if config.find(tenant, UPLOADS_SOURCE) is None:
            sources.append(
                {
                    "id": UPLOADS_SOURCE,
                    "type": "s3",
                    "bucket": bucket,
                    "prefix": f"{settings.uploads_prefix}{tenant}/",
                    # the gateway triggers a sync after each upload; this is the safety net
                    "interval_s": 900.0,
                }
            )
    return parse_sources(json.dumps(doc), origin="sources file with upload sources")


async def build_scheduler(c: Components, config: SourcesConfig) -> Scheduler:
    s = c.settings
    resolver = SecretResolver(
        environ=os.environ,
        aws_region=s.aws.region,
        aws_endpoint_url=os.environ.get("AWS_ENDPOINT_URL"),
    )
    scheduler = Scheduler(
        registry=c.registry,
        blobstore=c.blobstore,
        parse_queue=c.queue("parse"),
        settings=s,
        initial_delay=False,
    )
    scheduler.add_all(await build_schedules(config, resolver))
    return scheduler


class SingletonReaper:
    """One stall sweep at a time across replicas (a registry lease), every ``interval_s``."""

    def __init__(self, c: Components, interval_s: float) -> None:
        model_id, dim = index_shape(c.settings)
        self.c = c
        self.reaper = StallReaper(
            c.registry,
            c.blobstore,
            {n: c.queue(n) for n in ("parse", "embed", "index")},
            stalled_after_s=c.settings.stalled_after_s,
            model_id=model_id,
            dim=dim,
        )
        self.interval_s = interval_s
        self.owner = default_owner()
        self._task: asyncio.Task[None] | None = None

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
                if await self.c.registry.acquire_lease(
                    "stall-reaper", self.owner, self.interval_s * 2
                ):
                    await self.reaper.sweep()
            except Exception:  # the next round tries again
                log.exception("stall sweep failed")
