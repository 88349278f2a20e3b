"""``datatorag up``: the whole product in one process on the embedded adapters.

Connector (a folder source, the shipped sample corpus by default), parser, embedder, indexer and
the query gateway share one event loop and one set of adapters under ``DATATORAG_DATA_DIR``.
Killing it at any point loses nothing: the queues and registry are durable, so the next ``up``
carries on where this one stopped.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from pathlib import Path

from libs.assembly import Components, embedder_worker, indexer_worker, parser_worker
from libs.config import Settings
from libs.log import get_logger
from libs.models import DocumentStatus
from libs.runtime import UvicornServer, check_all_or_exit, freeze_heap, install_stop_signals

log = get_logger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_CORPUS = REPO_ROOT / "samples" / "acme-hr"


def default_tenant(settings: Settings) -> str:
    return next(iter(settings.tenant_for_key().values()))


async def run_up(settings: Settings, *, source_dir: Path | None, sync_interval_s: float,
                 progress: bool = True) -> None:
    from libs.connectors.config import load_sources
    from libs.connectors.landing import FolderLanding
    from libs.gateway.app import GatewayDeps, create_app
    from libs.serve_connector import SingletonReaper, build_scheduler, folder_sources
    from libs.serve_gateway import start_grpc
    from libs.uploads import upload_hook

    c = Components(settings)
    _say("starting: loading the embedding model and opening the stores...")
    workers = [await parser_worker(c), await embedder_worker(c), await indexer_worker(c)]
    index = await c.index()
    embedder = await c.embedder()
    await check_all_or_exit(c.readiness, "datatorag up")

    tenant = default_tenant(settings)
    landing_root = settings.data_dir / "landing"
    if settings.sources_file:
        config = load_sources(settings.sources_file)
    else:
        folder = source_dir or SAMPLE_CORPUS
        config = folder_sources(tenant, folder, sync_interval_s,
                                "samples" if folder == SAMPLE_CORPUS else "folder",
                                exclude=["_src/*"] if folder == SAMPLE_CORPUS else None,
                                uploads=(landing_root, sorted(set(settings.tenant_for_key().values()))))
    scheduler = await build_scheduler(c, config)
    reaper = SingletonReaper(c, interval_s=max(30.0, settings.stalled_after_s / 2))

    async def on_sync(tenant: str, source_id: str) -> dict:
        return scheduler.trigger(tenant, source_id)

    landing = FolderLanding(landing_root, max_bytes=settings.max_document_bytes)
    app = create_app(GatewayDeps(
        settings=settings, index=index, embedder=embedder, registry=c.registry,
        blobstore=c.blobstore, readiness=c.readiness, on_sync=on_sync,
        on_upload=upload_hook(landing, on_sync),
    ))
    http = UvicornServer(app, settings.gateway_host, settings.gateway_port)
    await http.start()
    grpc_server = await start_grpc(app, settings)
    freeze_heap()
    for w in workers:
        w.start()
    await scheduler.start()
    reaper.start()
    stop = asyncio.Event()
    install_stop_signals(stop)
    url = f"http://{settings.gateway_host}:{settings.gateway_port}"
    _say(f"DatatoRAG is up: gateway {url} (docs {url}/docs), data in {settings.data_dir.resolve()}")
    _say("sources: " + ", ".join(f"{s['tenant']}/{s['source']} ({s['kind']}, every {s['interval_s']:.0f}s)"
                                 for s in scheduler.status()))
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
        if grpc_server is not None:
            await grpc_server.stop(5)
        await http.stop()
        await c.close()
        _say("stopped")


async def _report_progress(c: Components, tenant: str, stop: asyncio.Event) -> None:
    """Print ingestion progress until everything known is in a final state, then a hint."""
    last = None
    announced = False
    started = time.monotonic()
    while not stop.is_set():
        await asyncio.sleep(1.0)
        try:
            records = await c.registry.find(tenant=tenant, limit=100_000)
        except Exception:  # noqa: BLE001, S112 - progress output must never take the process down
            continue
        counts = Counter(r.status.value for r in records)
        line = ", ".join(f"{s.value.lower()} {counts[s.value]}" for s in DocumentStatus if counts[s.value])
        if line and line != last:
            _say(f"[{time.monotonic() - started:6.1f}s] documents: {line}")
            last = line
        pending = sum(1 for r in records if not r.status.is_final)
        if records and not pending and not announced:
            failed = [r for r in records if r.status is DocumentStatus.FAILED]
            _say(f"ingestion complete: {counts['INDEXED']} indexed, {len(failed)} failed")
            for r in failed:
                _say(f"  FAILED {r.path}: {r.reason}")
            _say('try:  datatorag query "how many vacation days do I get?"')
            announced = True
        elif pending:
            announced = False


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)

