"""Connectors: sources (folder, FTP/FTPS, SFTP, S3 landing zone, Workday, Rippling), the sync
engine that turns a source into an incremental feed of ``DocumentFetched``/``DocumentDeleted``
messages on the parse queue, the per-tenant sources file and the scheduler.

Wiring (the connector service, the gateway and the CLI)::

    config = load_sources(settings.sources_file)                 # datatorag.connectors.config
    resolver = SecretResolver(aws_region=settings.aws.region)    # env:/file:/secretsmanager:
    scheduler = Scheduler(registry=..., blobstore=..., parse_queue=..., settings=settings)
    scheduler.add_all(await build_schedules(config, resolver))   # datatorag.connectors.builder
    await scheduler.start()                                      # ... await scheduler.stop()

    scheduler.trigger(tenant, source_id)      # POST /v1/sources/{id}/sync (202; NotFound -> 404)
    await scheduler.sync_now(tenant, source_id)   # CLI: runs one sync, returns the SyncRun
    await registry.sync_runs(tenant, source_id)   # recorded runs with their counts

Uploads (``POST /v1/documents``): ``datatorag.connectors.landing`` (``FolderLanding``,
``S3Landing``); S3 event notifications: ``datatorag.connectors.s3_events.pump_s3_events``.
"""

from datatorag.connectors.base import (
    Source,
    SourceAuthError,
    SourceEntry,
    SourceError,
    SourceUnavailable,
)

__all__ = ["Source", "SourceAuthError", "SourceEntry", "SourceError", "SourceUnavailable"]
