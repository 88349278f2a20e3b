"""Parsing in a bounded sandbox: each document is parsed and chunked in a worker process of its
own slot, so one hostile document can cost at most its own limits and never the service.

* Memory: the worker's address space may grow by ``memory_mb`` over what it holds at start
  (``RLIMIT_AS``); a parse that needs more gets ``MemoryError`` (``memory_limit``).
* CPU: each parse may use ``cpu_s`` CPU seconds (``RLIMIT_CPU``: the kernel ends the worker with
  SIGXCPU) and ``wall_s`` wall seconds (the parent kills it): ``parse_timeout``.
* Text, pages, table cells and inflated archive bytes are bounded while reading
  (``datatorag.parsing.limits``); the number of chunks after chunking.

A worker that was killed, ran out of memory or died is replaced before its slot takes the next
document. Slots are handed out fairly by tenant: one tenant's queue of slow documents cannot hold
back another tenant's. Parsing off the service's process also keeps the GIL free for the event
loop, so the gateway's latency does not move while a bomb is parsed (bench/bench_hostile.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
from collections import Counter, OrderedDict, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from datatorag.domain.errors import PermanentError, TransientError
from datatorag.observability.log import get_logger
from datatorag.parsing.limits import ParseLimits
from datatorag.parsing.model import OcrPage

log = get_logger(__name__)

STARTUP_TIMEOUT_S = 120.0
WORKER_NICENESS = 10  # a cold start on a loaded 2-core box imports for seconds


@dataclass(frozen=True)
class SandboxLimits:
    workers: int = 2
    memory_mb: int = 2048
    cpu_s: float = 120.0
    wall_s: float = 300.0


@dataclass(frozen=True)
class ParseJob:
    """Everything a worker needs to parse and chunk one document version."""

    data: bytes
    filename: str
    content_type: str | None
    max_bytes: int
    limits: ParseLimits
    max_tokens: int
    overlap_tokens: int
    title_hint: str | None
    source: str
    path: str


@dataclass(frozen=True)
class ParseResult:
    payload: bytes  # the ChunkSet as JSON, ready for the blob store
    chunk_count: int
    page_count: int | None
    title: str | None
    doc_type: str
    ocr_pages: tuple[OcrPage, ...] = ()  # pages read by OCR, with their confidence


class SandboxClosed(TransientError):
    """The sandbox shut down while the document waited or was parsed: release it, retry later."""


class FairSlots:
    """``n`` slots; a freed slot goes to the waiting tenant with the fewest parses running, then
    the fewest served while there was a queue (then the one waiting longest), not simply to
    whoever asked first: a tenant that floods the parser gets its share, not everyone's."""

    def __init__(self, n: int) -> None:
        self.free = n
        self.running: Counter[str] = Counter()
        self.served: Counter[str] = Counter()  # grants since the queue was last empty
        self._waiting: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()

    async def acquire(self, tenant: str) -> None:
        if self.free > 0 and not self._waiting:
            self.free -= 1
            self.running[tenant] += 1
            self.served[tenant] += 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(tenant, deque()).append(fut)
        try:
            await fut
        except BaseException:
            if fut.done() and not fut.cancelled():
                self.release(tenant)  # granted just as we were cancelled: pass it on
            else:
                self._forget(tenant, fut)
            raise

    def release(self, tenant: str) -> None:
        self.running[tenant] -= 1
        if self.running[tenant] <= 0:
            del self.running[tenant]
        self.free += 1
        self._grant()

    def _grant(self) -> None:
        while self.free > 0 and self._waiting:
            # min() keeps the first of equals: the waiting order
            tenant = min(self._waiting, key=lambda t: (self.running[t], self.served[t]))
            queue = self._waiting[tenant]
            fut = queue.popleft()
            if not queue:
                del self._waiting[tenant]
            else:
                self._waiting.move_to_end(tenant)  # round robin among equals
            if fut.done():
                continue
            self.free -= 1
            self.running[tenant] += 1
            self.served[tenant] += 1
            fut.set_result(None)
        if not self._waiting:
            self.served = Counter(self.running)

    def _forget(self, tenant: str, fut: asyncio.Future[None]) -> None:
        queue = self._waiting.get(tenant)
        if queue is not None:
            with contextlib.suppress(ValueError):
                queue.remove(fut)
            if not queue:
                del self._waiting[tenant]


class _Slot:
    """One worker process and the socket to it; replaced whenever it cannot be trusted.

    Workers are started as ``python -m datatorag.pipeline.sandbox_worker`` rather than through
    ``multiprocessing``: a spawned or forkserver child would re-import the host's ``__main__``
    (a test runner, a benchmark script), and forking a threaded service is unsafe."""

    def __init__(self, model: str, limits: SandboxLimits) -> None:
        self.model = model
        self.limits = limits
        self.proc: subprocess.Popen[bytes] | None = None
        self.conn: Connection | None = None

    def ensure(self) -> Connection:
        if self.proc is None or self.proc.poll() is not None or self.conn is None:
            self.discard()
            ours, theirs = socket.socketpair()
            # fewer 64 MiB malloc arenas; a Rust OOM says one line, not a 40-frame backtrace
            env = {**os.environ, "MALLOC_ARENA_MAX": "2", "RUST_BACKTRACE": "0"}
            cmd = [sys.executable, "-m", "datatorag.pipeline.sandbox_worker", str(theirs.fileno()),
                   self.model, str(self.limits.memory_mb)]  # fmt: skip
            # a process group of its own: killing the worker kills its OCR child with it
            self.proc = subprocess.Popen(
                cmd, pass_fds=(theirs.fileno(),), env=env, stdin=subprocess.DEVNULL,
                process_group=0,
            )  # fmt: skip
            theirs.close()
            self.conn = Connection(ours.detach())
            # a worker's start-up (imports, tokenizer) is not any document's parse time
            if not self.conn.poll(STARTUP_TIMEOUT_S) or self.conn.recv() != ("ready",):
                self.discard()
                raise TransientError("a parse sandbox worker did not start")
        return self.conn

    def kill(self) -> None:
        """SIGKILL the worker and whatever it started (tesseract): its whole process group."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            if self.proc.poll() is None:
                self.proc.kill()

    def discard(self) -> None:
        if self.proc is not None:
            self.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
        if self.conn is not None:
            self.conn.close()
        self.proc = self.conn = None

    def run(self, job: ParseJob, closing: threading.Event) -> ParseResult:
        conn = self.ensure()
        try:
            conn.send(("parse", job, self.limits.cpu_s))
            ready = conn.poll(self.limits.wall_s)
        except (BrokenPipeError, ConnectionError, EOFError, OSError):
            ready = True  # the worker is gone: recv below tells how
        if closing.is_set():
            self.discard()
            raise SandboxClosed("the parser is shutting down")
        if not ready:
            self.discard()
            raise PermanentError(
                f"{job.filename!r} took longer than {self.limits.wall_s:g} s to parse "
                "(DATATORAG_LIMIT_PARSE_WALL_S)",
                code="parse_timeout",
            )
        try:
            reply: tuple[Any, ...] = conn.recv()
        except (EOFError, OSError):
            raise self._death(job) from None
        if reply[0] == "ok":
            result: ParseResult = reply[1]
            return result
        _, code, reason, recycle = reply
        if recycle:  # after a MemoryError the worker's heap is not to be trusted
            self.discard()
        raise PermanentError(reason, code=code)

    def _death(self, job: ParseJob) -> BaseException:
        code = None
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = self.proc.wait(5)
        self.discard()
        if code == -signal.SIGXCPU:
            return PermanentError(
                f"{job.filename!r} needed more than {self.limits.cpu_s:g} CPU seconds to parse "
                "(DATATORAG_LIMIT_PARSE_CPU_S)",
                code="parse_timeout",
            )
        if code is not None and code < 0:
            name = signal.Signals(-code).name
            return PermanentError(
                f"the parser process died with {name} while reading {job.filename!r} (a native "
                f"library failed; often the {self.limits.memory_mb} MiB memory limit, "
                "DATATORAG_LIMIT_PARSE_MEMORY_MB)",
                code="memory_limit" if -code in (signal.SIGKILL, signal.SIGABRT) else "parse_crash",
            )
        return PermanentError(
            f"the parser process exited ({code}) while reading {job.filename!r}",
            code="parse_crash",
        )


class ParseSandbox:
    """``await parse(tenant, job)``: the document's chunks, or ``PermanentError`` with the limit
    it broke. ``close()`` kills every worker; parses in flight raise ``SandboxClosed``."""

    def __init__(self, model: str, limits: SandboxLimits | None = None) -> None:
        self.limits = limits or SandboxLimits()
        self._slots = [_Slot(model, self.limits) for _ in range(self.limits.workers)]
        self._idle = list(self._slots)
        self._fair = FairSlots(self.limits.workers)
        self._pool = ThreadPoolExecutor(self.limits.workers, thread_name_prefix="parse-slot")
        self._closing = threading.Event()

    async def parse(self, tenant: str, job: ParseJob) -> ParseResult:
        if self._closing.is_set():
            raise SandboxClosed("the parser is shutting down")
        await self._fair.acquire(tenant)
        slot = self._idle.pop()
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, slot.run, job, self._closing)
        finally:
            self._idle.append(slot)
            self._fair.release(tenant)

    async def close(self) -> None:
        """Kill the workers now (a parse in flight is released for another process to retry)."""
        self._closing.set()
        for slot in self._slots:
            if slot.proc is not None:
                slot.kill()
        await asyncio.get_running_loop().run_in_executor(None, self._reap)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _reap(self) -> None:
        for slot in self._slots:
            proc = slot.proc
            if proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(5)


# ---- inside the worker process ---------------------------------------------------------------


def _worker_main(conn: Connection, model: str, memory_mb: int) -> None:
    # The parent handles SIGINT/SIGTERM for the whole service; a Ctrl-C must not kill a worker
    # before the parent has decided what to do with its document.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # Parsing is batch work: when it competes for a core with the service's own event loop
    # (queries, acks, heartbeats), the kernel should let the latter win.
    os.nice(WORKER_NICENESS)
    _limit_memory(memory_mb)
    from datatorag.chunking import load_chunk_tokenizer

    tokenizer = load_chunk_tokenizer(model)
    conn.send(("ready",))
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        _, job, cpu_s = request
        _limit_cpu(cpu_s)
        try:
            conn.send(("ok", parse_and_chunk(job, tokenizer)))
        except PermanentError as exc:
            conn.send(("fail", exc.code, exc.reason, False))
        except MemoryError:
            conn.send(
                (
                    "fail",
                    "memory_limit",
                    f"{job.filename!r} needed more than the {memory_mb} MiB a parse may use "
                    "(DATATORAG_LIMIT_PARSE_MEMORY_MB)",
                    True,
                )
            )
        except Exception as exc:  # noqa: BLE001 - a reader bug is this document's failure
            conn.send(("fail", "parse_error", f"{type(exc).__name__}: {exc}"[:500], True))


def _limit_memory(memory_mb: int) -> None:
    pages = int(open("/proc/self/statm").read().split()[0])  # noqa: SIM115 - one read
    baseline = pages * os.sysconf("SC_PAGE_SIZE")
    limit = baseline + memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _limit_cpu(cpu_s: float) -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = usage.ru_utime + usage.ru_stime
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = int(used + cpu_s) + 1
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def parse_and_chunk(job: ParseJob, tokenizer: Any) -> ParseResult:
    """What a worker does with one job, in the calling process (tests, tools; no limits on
    memory or time beyond the reading limits)."""
    from datatorag.chunking import chunk_document
    from datatorag.parsing import parse_document
    from datatorag.pipeline.payloads import ChunkSet, DocumentMeta

    doc = parse_document(
        job.data,
        filename=job.filename,
        content_type=job.content_type,
        max_bytes=job.max_bytes,
        limits=job.limits,
    )
    chunks = chunk_document(
        doc, tokenizer, max_tokens=job.max_tokens, overlap_tokens=job.overlap_tokens
    )
    if not chunks:
        raise PermanentError("document has no extractable text", code="no_text")
    if len(chunks) > job.limits.max_chunks:
        raise PermanentError(
            f"{job.filename!r} makes {len(chunks):,} chunks, over the limit of "
            f"{job.limits.max_chunks:,} (DATATORAG_LIMIT_MAX_CHUNKS)",
            code="too_many_chunks",
        )
    meta = DocumentMeta(
        title=doc.title or job.title_hint,
        doc_type=doc.doc_type,
        page_count=doc.page_count,
        source=job.source,
        path=job.path,
    )
    payload = ChunkSet(doc=meta, chunks=chunks).model_dump_json().encode()
    return ParseResult(
        payload, len(chunks), doc.page_count, meta.title, doc.doc_type, tuple(doc.ocr)
    )
