"""structlog JSON logging. Document id, tenant and correlation id ride in contextvars, so every
line a worker logs while handling a message carries them, across queue hops."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import structlog

_configured = False


def _fallback(value: object) -> str:
    return os.fspath(value) if isinstance(value, os.PathLike) else str(value)


def _orjson_dumps(event: dict[str, Any], **_: Any) -> bytes:
    # OPT_NON_STR_KEYS: a dict logged with int keys must not take the log line down with it
    return orjson.dumps(event, default=_fallback, option=orjson.OPT_NON_STR_KEYS)


def configure(level: str = "INFO", fmt: str = "json") -> None:
    global _configured
    logging.basicConfig(stream=sys.stderr, level=level.upper(), format="%(message)s", force=True)
    renderer: structlog.typing.Processor
    factory: structlog.typing.WrappedLogger
    stream = getattr(sys.stderr, "buffer", None)
    if fmt == "json" and stream is not None:
        # orjson straight to the byte stream: the gateway logs a line per request, and the
        # stdlib encoder plus a text-layer print cost it ~4% of its CPU (bench/bench_query.py).
        renderer = structlog.processors.JSONRenderer(serializer=_orjson_dumps)
        factory = structlog.BytesLoggerFactory(stream)
    else:
        renderer = (
            structlog.processors.JSONRenderer()
            if fmt == "json"
            else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        )
        factory = structlog.PrintLoggerFactory(sys.stderr)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    # Third-party chatter at WARNING unless we are debugging.
    for noisy in ("httpx", "botocore", "aiobotocore", "urllib3", "opensearch", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level.upper())))
    _configured = True


def get_logger(name: str | None = None) -> structlog.typing.FilteringBoundLogger:
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name)
    return logger


@contextmanager
def bound(**values: object) -> Iterator[None]:
    """Bind context (tenant, doc_id, correlation_id, ...) for the duration of a block."""
    tokens = structlog.contextvars.bind_contextvars(
        **{k: v for k, v in values.items() if v is not None}
    )
    try:
        yield
    finally:
        structlog.contextvars.reset_contextvars(**tokens)
