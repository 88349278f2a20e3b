"""What ``GET /v1/sources`` shows per source, read from the registry alone (the connector
registers each source and records every run there)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from pydantic import BaseModel, Field

from datatorag.domain.models import DocumentStatus, utcnow
from datatorag.ports import Registry, RunType, SyncRun

_DOCS_LIMIT = 10_000_000


class SourceStatus(BaseModel):
    source: str
    kind: str
    interval_s: float | None = Field(None, description="the schedule: seconds between runs")
    enabled: bool = True
    next_run_at: datetime | None = Field(None, description="None while a run is under way")
    deleted_at: datetime | None = None
    last_run: SyncRun | None = None
    last_ok_run_at: datetime | None = Field(None, description="start of the last run that was ok")
    documents: dict[str, int] = Field(
        default_factory=dict, description="current versions by status"
    )
    lag_s: float | None = Field(
        None,
        description="seconds since the start of the last ok run: changes at the source after "
        "that moment may not be searchable yet (None: never synced ok)",
    )


async def source_status(
    registry: Registry, tenant: str, source: str, audience: frozenset[str] | None = None
) -> SourceStatus | None:
    """``audience``: the caller's (``Principal.audience()``); the document counts are of the
    documents it may see (None: all)."""
    record = await registry.get_source(tenant, source)
    if record is None:
        return None
    runs = list(await registry.sync_runs(tenant, source, limit=50))
    syncs = [r for r in runs if r.type is not RunType.REINDEX]
    last_ok = next((r for r in syncs if r.status == "ok"), None)
    docs = await registry.find(tenant=tenant, source=source, limit=_DOCS_LIMIT, audience=audience)
    counts = Counter(d.status.value for d in docs)
    return SourceStatus(
        source=record.source,
        kind=record.kind,
        interval_s=record.interval_s,
        enabled=record.enabled,
        next_run_at=record.next_run_at,
        deleted_at=record.deleted_at,
        last_run=runs[0] if runs else None,
        last_ok_run_at=last_ok.started_at if last_ok else None,
        documents={s.value: counts[s.value] for s in DocumentStatus if counts[s.value]},
        lag_s=(utcnow() - last_ok.started_at).total_seconds() if last_ok else None,
    )


async def sources_status(
    registry: Registry, tenant: str, audience: frozenset[str] | None = None
) -> list[SourceStatus]:
    out = []
    for record in await registry.sources(tenant):
        status = await source_status(registry, tenant, record.source, audience)
        if status is not None:
            out.append(status)
    return out
