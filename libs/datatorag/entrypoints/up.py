"""``datatorag up``: the whole product in one process on the embedded adapters.

Connector (a folder source, the shipped sample corpus by default), parser, embedder, indexer and
the query gateway share one event loop and one set of adapters under ``DATATORAG_DATA_DIR``.
Killing it at any point loses nothing: the queues and registry are durable, so the next ``up``
carries on where this one stopped.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from datatorag.bootstrap import Components, embedder_worker, indexer_worker, parser_worker
from datatorag.config import Settings, sample_corpus
from datatorag.domain.models import DocumentStatus
from datatorag.observability.log import get_logger
from datatorag.runtime import UvicornServer, check_all_or_exit, freeze_heap, install_stop_signals

log = get_logger(__name__)


def default_tenant(settings: Settings) -> str:
    return next(iter(settings.tenant_for_key().values()), "default")


async def run_up(
    settings: Settings, *, source_dir: Path | None, sync_interval_s: float, progress: bool = True
) -> None:
    from datatorag.bootstrap.connector import SingletonReaper, build_scheduler, folder_sources
    from datatorag.bootstrap.gateway import build_gateway, upload_hook
    from datatorag.bootstrap.index_build import InProcessReindex
    from datatorag.connectors.config import load_sources
    from datatorag.connectors.landing import FolderLanding
    from datatorag.entrypoints.serve_gateway import start_grpc, stop_grpc
    from datatorag.gateway.deps import GatewayDeps
    from datatorag.gateway.edge import check_settings

    check_settings(settings)  # a bad key or OIDC setting fails before the model loads
    tenant = default_tenant(settings)
    landing_root = settings.data_dir / "landing"
    if settings.sources_file:
        config = load_sources(settings.sources_file)
    else:
        samples = settings.sample_corpus_dir or sample_corpus()
        folder = source_dir or samples
        if not folder.is_dir():
            raise SystemExit(f"datatorag up: {folder} is not a folder")
        config = folder_sources(
            tenant,
            folder,
            sync_interval_s,
            "samples" if folder == samples else "folder",
            exclude=["_src/*"] if folder == samples else None,
            uploads=(landing_root, settings.tenants_of_static_keys() or [tenant]),
        )
    c = Components(settings)
    _say("starting: loading the embedding model and opening the stores...")
    workers = [await parser_worker(c), await embedder_worker(c), await indexer_worker(c)]
    index = await c.index()
    embedder = await c.embedder()
    await check_all_or_exit(c.readiness, "datatorag up")

    scheduler = await build_scheduler(c, config)
    reaper = SingletonReaper(c, interval_s=max(30.0, settings.stalled_after_s / 2))

    async def on_sync(tenant: str, source_id: str) -> dict[str, Any]:
        return scheduler.trigger(tenant, source_id)

    landing = FolderLanding(landing_root, max_bytes=settings.max_document_bytes)
    gw = build_gateway(
        GatewayDeps(
            settings=settings,
            index=index,
            embedder=embedder,
            registry=c.registry,
            blobstore=c.blobstore,
            readiness=c.readiness,
            on_sync=on_sync,
            on_upload=upload_hook(landing, on_sync),
            reindex=InProcessReindex(settings),
        )
    )
    http = UvicornServer(gw.app, settings.gateway_host, settings.gateway_port)
    await http.start()
    await start_grpc(gw)
    freeze_heap()
    for w in workers:
        w.start()
    await scheduler.start()
    reaper.start()
    stop = asyncio.Event()
    install_stop_signals(stop)
    url = f"http://{settings.gateway_host}:{settings.gateway_port}"
    _say(f"DatatoRAG is up: gateway {url} (docs {url}/docs), data in {settings.data_dir.resolve()}")
    _say(
        "sources: "
        + ", ".join(
            f"{s['tenant']}/{s['source']} ({s['kind']}, every {s['interval_s']:.0f}s)"
            for s in scheduler.status()
        )
    )
    reporter = asyncio.create_task(_report_progress(c, tenant, stop)) if progress else None
    try:
        await stop.wait()
    finally:
        _say("stopping: finishing in-flight work...")
        if reporter:
            reporter.cancel()
        await reaper.stop()
        await scheduler.stop()
        await asyncio.gather(*(w.stop() for w in workers))
        await stop_grpc(gw)
        await http.stop()
        await gw.service.aclose()
        await c.close()
        _say("stopped")


async def _report_progress(c: Components, tenant: str, stop: asyncio.Event) -> None:
    """Live ingestion progress (a bar on a terminal: documents per state, throughput, ETA) until
    everything known is in a final state, then a hint."""
    from datatorag.entrypoints.progress import IngestBar

    bar = IngestBar()
    announced = False
    try:
        while not stop.is_set():
            await asyncio.sleep(1.0)
            try:
                records = await c.registry.find(tenant=tenant, limit=100_000)
            except Exception:  # noqa: BLE001 - progress output must never take the process down
                continue
            snap = bar.update(records)
            pending = snap.total - snap.final
            if records and not pending and not announced:
                failed = [r for r in records if r.status is DocumentStatus.FAILED]
                bar.say(
                    f"ingestion complete: {snap.counts['INDEXED']} indexed, {len(failed)} failed"
                )
                for r in failed:
                    bar.say(f"  FAILED {r.path}: {r.reason}")
                bar.say('try:  datatorag ask "how many vacation days do I get?"')
                announced = True
            elif pending:
                announced = False
    finally:
        bar.stop()


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
