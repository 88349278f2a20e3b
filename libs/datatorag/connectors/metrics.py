"""Connector metrics (the process-wide prometheus registry, next to
``datatorag.observability.metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

SYNC_RUNS = Counter(
    "datatorag_connector_sync_runs_total",
    "Sync runs finished, by source kind and status",
    ["kind", "status"],
)
SYNC_SECONDS = Histogram(
    "datatorag_connector_sync_seconds",
    "Wall time of one sync run",
    ["kind"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
SYNC_DOCUMENTS = Counter(
    "datatorag_connector_documents_total",
    "Documents seen by sync runs, by outcome (new, changed, unchanged, deleted, failed, resent)",
    ["kind", "outcome"],
)
