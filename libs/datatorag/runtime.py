"""Running a service: signals, the health/metrics endpoint, and readiness checks.

Every worker exposes ``/healthz`` (liveness: its loops are alive and made progress recently),
``/readyz`` (each dependency checked by name) and ``/metrics`` on ``health_port``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import logging
import os
import re
import signal
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, Protocol, TypeVar

import uvicorn
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from datatorag.domain.errors import DependencyError, InsufficientStorage
from datatorag.observability.log import get_logger

log = get_logger(__name__)

Check = Callable[[], Awaitable[None]]
T = TypeVar("T")


# The shared secret of internal calls (gateway -> connector, gateway/workers -> embedder).
SERVICE_TOKEN_HEADER = "X-Service-Token"


def require_service_token(token: str | None) -> Callable[[Request], Awaitable[None]]:
    """A FastAPI dependency refusing (401) a request without ``X-Service-Token: <token>``,
    compared in constant time; with no token configured (embedded mode) it lets all through."""
    expected = token.encode() if token else None

    async def check(request: Request) -> None:
        if expected is None:
            return
        sent = request.headers.get(SERVICE_TOKEN_HEADER, "").encode("latin-1", "replace")
        if not hmac.compare_digest(sent, expected):
            raise HTTPException(
                401,
                f"missing or wrong {SERVICE_TOKEN_HEADER}: internal endpoints are for the"
                " product's own services",
            )

    return check


def freeze_heap() -> None:
    """Put everything allocated during start-up out of the cyclic GC's reach (``gc.freeze``).

    A started gateway holds ~150k long-lived objects (~570k with torch loaded) and every full
    collection walks all of them: 40-330 ms with the event loop, and every request in flight,
    stopped. Frozen, a collection walks only what was allocated since (bench/bench_query.py).
    """
    gc.collect()
    gc.freeze()


def run_service(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on uvloop where it is installed: a long-running service's event loop.

    uvloop cuts the per-request cost of the HTTP gateway (bench/bench_query.py); everything
    here is plain asyncio, so the stdlib loop is a drop-in fallback.
    """
    try:
        import uvloop
    except ImportError:  # Windows, or a slim install
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def exit_process(code: int = 0) -> NoReturn:
    """End a service process that has shut down cleanly, without interpreter teardown.

    Everything durable is closed by the time this runs. What teardown would still do is let
    native extensions that torch loads (triton's nanobind modules) print ~60 lines of "leaked
    instance" warnings after our final "stopped" line, which reads like a crash.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


@dataclass(frozen=True)
class CheckResult:
    """One dependency check's outcome; ``error`` is the failure, ``None`` when it passed."""

    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def error_class(self) -> str:
        """The class that says what went wrong: a ``DependencyError``'s cause when it has one
        (``DatabaseError`` says more than the wrapper)."""
        exc = self.error
        while isinstance(exc, DependencyError) and exc.__cause__ is not None:
            exc = exc.__cause__
        return type(exc).__name__

    @property
    def message(self) -> str:
        exc = self.error
        if exc is None:
            return "ok"
        return exc.detail if isinstance(exc, DependencyError) else str(exc)

    def public(self, *, debug: bool = False) -> str:
        """``ok``, or ``<error class>: <message>`` with local paths and source locations removed
        (an unauthenticated endpoint must not map the host) unless ``debug``."""
        if self.ok:
            return "ok"
        return f"{self.error_class}: {self.message if debug else redact(self.message)}"

    def traceback(self) -> str:
        if self.error is None:
            return ""
        return "".join(traceback.format_exception(self.error))


# library source locations (Rust panics and errors name them: lance-io/src/object_store.rs:123:45)
_SOURCE_LOCATION = re.compile(r"[^\s'\"()\[\]]+\.(?:rs|c|cc|cpp|h|hpp|go|py|pyx)(?::\d+)+")
# absolute paths: /x/y (but not the // of a URL), C:\x, file:///x
_PATH = re.compile(
    r"file://\S+"
    r"|\b[A-Za-z]:\\[^\s'\"(),;]*"
    r"|(?:(?<=^)|(?<=[\s'\"(=:,\[]))/(?!/)[^\s'\"(),;\]]+?(?=$|[\s'\"(),;\]]|[:.](?:\s|$))"
    # and relative ones of three or more parts (Lance drops the leading slash: tmp/x/t.lance)
    r"|(?<![\w/:.@-])[\w.-]+(?:/[\w.-]+){2,}/?"
)


def redact(text: str) -> str:
    """``text`` without local paths or library source locations."""
    return _PATH.sub("<path>", _SOURCE_LOCATION.sub("<source>", text))


@dataclass
class Readiness:
    """Named dependency checks; each raises (preferably ``DependencyError``) when not ready.

    A check exercises its dependency the way the service uses it (a queue's receive path, a
    blob write and delete, an index read), so "ready" means the work would succeed. ``debug``
    (``DATATORAG_DEBUG_ERRORS``) puts full messages and tracebacks in the ``/readyz`` body.
    """

    checks: dict[str, Check] = field(default_factory=dict)
    timeout_s: float = 5.0
    debug: bool = False
    # checks whose failure degrades the service instead of making it not ready (the gateway's
    # embedder: searches fall back to BM25); /readyz names them under "degraded"
    optional: set[str] = field(default_factory=set)

    def add(self, name: str, check: Check) -> None:
        self.checks[name] = check

    async def results(self) -> dict[str, CheckResult]:
        async def one(name: str, check: Check) -> tuple[str, CheckResult]:
            try:
                await asyncio.wait_for(check(), self.timeout_s)
                return name, CheckResult()
            except TimeoutError:
                return name, CheckResult(TimeoutError(f"timed out after {self.timeout_s}s"))
            except Exception as exc:  # noqa: BLE001 - report, never crash the probe
                return name, CheckResult(exc)

        return dict(await asyncio.gather(*(one(n, c) for n, c in self.checks.items())))

    async def run(self) -> dict[str, str]:
        """``{name: "ok" | "<error class>: <message>"}``, redacted unless ``debug``."""
        return {n: r.public(debug=self.debug) for n, r in (await self.results()).items()}


def free_disk_check(paths: Mapping[str, Path], min_free_bytes: int) -> Check:
    """Raises ``InsufficientStorage`` naming the location (by label, not path) whose free space
    is below ``min_free_bytes``: before writes start failing with ``ENOSPC``."""

    async def check() -> None:
        for label, path in paths.items():
            free = await asyncio.to_thread(_free_bytes, path)
            if free < min_free_bytes:
                raise InsufficientStorage(
                    f"{label} has {free / _MIB:.0f} MiB free, below the "
                    f"{min_free_bytes / _MIB:.0f} MiB floor (DATATORAG_MIN_FREE_DISK_MB)"
                )

    return check


_MIB = 1024 * 1024


def _free_bytes(path: Path) -> int:
    """Free bytes for an unprivileged writer at ``path`` (or its nearest existing parent)."""
    for candidate in (path, *path.resolve().parents):
        if candidate.exists():
            st = os.statvfs(candidate)
            return st.f_bavail * st.f_frsize
    return 0


async def check_all_or_exit(readiness: Readiness, service: str) -> None:
    """Fail fast at startup with a message naming every missing dependency (in full: this goes
    to the operator's terminal and log, not to an HTTP client)."""
    results = await readiness.results()
    bad = {k: r.public(debug=True) for k, r in results.items() if not r.ok}
    if bad:
        for name, why in bad.items():
            log.error("dependency not ready", service=service, dependency=name, detail=why)
        raise SystemExit(
            f"{service}: cannot start, dependencies not ready: "
            + "; ".join(f"{k}: {v}" for k, v in bad.items())
        )


def health_app(
    readiness: Readiness, liveness: Callable[[], tuple[bool, str]] | None = None
) -> FastAPI:
    app = FastAPI(title="DatatoRAG worker health", docs_url=None, redoc_url=None)
    add_health_routes(app, readiness, liveness)
    return app


def add_health_routes(
    app: FastAPI, readiness: Readiness, liveness: Callable[[], tuple[bool, str]] | None = None
) -> None:
    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        ok, detail = liveness() if liveness else (True, "ok")
        return JSONResponse(
            {"status": "ok" if ok else "unhealthy", "detail": detail},
            status_code=200 if ok else 503,
        )

    reported: dict[str, str] = {}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        results = await readiness.results()
        ready = all(r.ok for n, r in results.items() if n not in readiness.optional)
        body: dict[str, Any] = {
            "ready": ready,
            "checks": {n: r.public(debug=readiness.debug) for n, r in results.items()},
        }
        degraded = sorted(n for n, r in results.items() if not r.ok and n in readiness.optional)
        if degraded:
            body["degraded"] = degraded
        if readiness.debug and not ready:
            body["debug"] = {n: r.traceback() for n, r in results.items() if not r.ok}
        # the full story goes to the log, where only operators read it: once per new failure
        failing = {n: r.public(debug=True) for n, r in results.items() if not r.ok}
        for name, detail in failing.items():
            if reported.get(name) != detail:
                log.warning("dependency not ready", dependency=name, detail=detail)
        reported.clear()
        reported.update(failing)
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


class Live(Protocol):
    """What liveness reads of a worker (``datatorag.pipeline.worker.Worker``)."""

    @property
    def service(self) -> str: ...

    @property
    def alive(self) -> bool: ...

    @property
    def last_progress(self) -> float: ...


def worker_liveness(workers: Sequence[Live], max_idle_s: float) -> Callable[[], tuple[bool, str]]:
    """A worker that stopped taking messages (dead loop, or stuck past max_idle_s) is unhealthy."""

    def check() -> tuple[bool, str]:
        now = time.time()
        for w in workers:
            if not w.alive:
                return False, f"{w.service}: consumer loop is not running"
            idle = now - w.last_progress
            if idle > max_idle_s:
                return False, f"{w.service}: no progress for {idle:.0f}s"
        return True, "ok"

    return check


class UvicornServer:
    """uvicorn inside our event loop, without its own signal handlers."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", access_log=False, lifespan="on"
        )
        self.server = uvicorn.Server(config)
        # our loop owns SIGTERM/SIGINT (install_stop_signals); uvicorn must not take them
        self.server.install_signal_handlers = lambda: None  # type: ignore[attr-defined]
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            if self._task.done():
                await self._task  # re-raise the startup error (port in use, ...)
                raise RuntimeError("HTTP server exited during startup")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self.server.should_exit = True
        if self._task:
            await asyncio.gather(self._task, return_exceptions=True)


def install_stop_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        # not on the main thread (embedded in a host process): the host owns the signals
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
