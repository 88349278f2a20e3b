"""Prometheus metrics shared by all services (one registry per process)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES = Counter(
    "datatorag_messages_total",
    "Queue messages handled, by service and outcome (ok, permanent_error, retry, dead_letter)",
    ["service", "outcome"],
)
HANDLE_SECONDS = Histogram(
    "datatorag_handle_seconds",
    "Time to handle one message (or batch) end to end",
    ["service"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
IN_FLIGHT = Gauge("datatorag_in_flight_messages", "Messages being worked on", ["service"])
QUEUE_DEPTH = Gauge("datatorag_queue_depth", "Approximate messages waiting", ["queue"])
LAST_PROGRESS = Gauge(
    "datatorag_worker_last_progress_timestamp_seconds",
    "Unix time a worker last received or finished a message (liveness)",
    ["service"],
)
DOCUMENTS = Counter("datatorag_documents_total", "Documents reaching a state", ["status"])
CHUNKS_EMBEDDED = Counter("datatorag_chunks_embedded_total", "Chunks embedded")
TOKENS_EMBEDDED = Counter("datatorag_tokens_embedded_total", "Tokens embedded (incl. padding-free)")
EMBED_BATCH_SECONDS = Histogram(
    "datatorag_embed_batch_seconds",
    "Model forward time per batch",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
CHUNKS_INDEXED = Counter("datatorag_chunks_indexed_total", "Chunk records written to the index")
AUDIENCE_UPDATES = Counter(
    "datatorag_audience_updates_total",
    "Document audiences changed at their source and applied to the index without re-embedding",
)
STALLED_DOCUMENTS = Gauge(
    "datatorag_stalled_documents", "Documents in a non-final state longer than the stall threshold"
)
PAGES_PARSED = Counter("datatorag_pages_parsed_total", "PDF/DOCX pages parsed")
OCR_PAGES = Counter(
    "datatorag_ocr_pages_total", "Pages read by OCR (scans, images), by confidence", ["confidence"]
)
