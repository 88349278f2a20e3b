"""Gateway request metrics (retrieval and query-embedding latency live in
``datatorag.retrieval.hybrid``)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUESTS = Counter(
    "datatorag_gateway_requests_total",
    "Gateway requests by route template (REST path or gRPC method), method and status",
    ["route", "method", "status"],
)
REQUEST_SECONDS = Histogram(
    "datatorag_gateway_request_seconds",
    "Gateway request latency by route template and status",
    ["route", "method", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def observe(route: str, method: str, status: int | str, seconds: float) -> None:
    REQUESTS.labels(route, method, str(status)).inc()
    REQUEST_SECONDS.labels(route, method, str(status)).observe(seconds)
