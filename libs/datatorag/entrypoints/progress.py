"""Live progress people can see, drawn with rich: documents per state, throughput and ETA for
``datatorag up`` and ``datatorag status --watch``; documents, chunks, cache reuse and ETA for
``datatorag reindex`` / ``rebuild-index``. On a terminal it is a bar redrawn in place; in a log
(not a TTY) one plain line per change, so nothing fills a log with escape codes."""

from __future__ import annotations

import sys
import time
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from datatorag.domain.models import DocumentRecord, DocumentStatus
from datatorag.pipeline.index_build import BuildProgress

_FINAL = ("INDEXED", "FAILED", "DELETED")


@dataclass
class IngestSnapshot:
    """Counts of current versions per state, with the rate at which they reach a final one."""

    counts: Counter[str]
    total: int
    final: int
    per_s: float | None
    eta_s: float | None

    def line(self) -> str:
        states = ", ".join(
            f"{s.value.lower()} {self.counts[s.value]}"
            for s in DocumentStatus
            if self.counts[s.value]
        )
        rate = "" if self.per_s is None else f"; {self.per_s * 60:.1f} documents/min"
        eta = "" if self.eta_s is None else f"; ETA {_clock(self.eta_s)}"
        return f"documents: {states or 'none yet'}{rate}{eta}"


@dataclass
class IngestRate:
    """Final documents over a sliding window of samples (a minute by default)."""

    window_s: float = 60.0
    samples: deque[tuple[float, int]] = field(default_factory=deque)

    def snapshot(
        self, records: Iterable[DocumentRecord], now: float | None = None
    ) -> IngestSnapshot:
        counts = Counter(r.status.value for r in records)
        total = sum(counts.values())
        final = sum(counts[s] for s in _FINAL)
        now = time.monotonic() if now is None else now
        self.samples.append((now, final))
        while len(self.samples) > 2 and now - self.samples[0][0] > self.window_s:
            self.samples.popleft()
        t0, f0 = self.samples[0]
        pending = total - final
        # a rate only while work is pending: once all is final it would only decay, tick by tick
        per_s = (final - f0) / (now - t0) if pending and now > t0 and final > f0 else None
        eta = 0.0 if not pending else (pending / per_s if per_s else None)
        return IngestSnapshot(counts, total, final, per_s, eta)


def _clock(seconds: float) -> str:
    s = round(seconds)
    return (
        f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
    )


def is_tty() -> bool:
    return sys.stderr.isatty()


class IngestBar:
    """``up`` / ``status --watch``: a bar of final documents of all known, the states beside it."""

    def __init__(self, *, live: bool | None = None) -> None:
        self.live = is_tty() if live is None else live
        self.rate = IngestRate()
        self._last = ""
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        if self.live:
            self._progress = Progress(
                TextColumn("[bold]documents"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[states]}"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task("ingest", total=None, states="")

    def update(self, records: Iterable[DocumentRecord]) -> IngestSnapshot:
        snap = self.rate.snapshot(records)
        if self._progress is not None and self._task is not None:
            states = snap.line().removeprefix("documents: ")
            self._progress.update(
                self._task, total=max(snap.total, 1), completed=snap.final, states=states
            )
        else:
            line = snap.line()
            if line != self._last:
                print(line, file=sys.stderr, flush=True)
                self._last = line
        return snap

    def say(self, text: str) -> None:
        """A message above the bar (or a plain line)."""
        if self._progress is not None:
            self._progress.console.print(text, markup=False, highlight=False)
        else:
            print(text, file=sys.stderr, flush=True)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()


class BuildBar:
    """``reindex`` / ``rebuild-index``: documents done of total, chunks, vectors reused, ETA."""

    def __init__(self, title: str, *, live: bool | None = None) -> None:
        self.live = is_tty() if live is None else live
        self.title = title
        self._last_print = 0.0
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        if self.live:
            self._progress = Progress(
                TextColumn(f"[bold]{title}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("docs, {task.fields[chunks]} chunks ({task.fields[reused]} reused)"),
                TextColumn("{task.fields[rate]} chunks/s"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            self._progress.start()
            self._task = self._progress.add_task(title, total=None, chunks=0, reused=0, rate="0")

    def __call__(self, p: BuildProgress) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(
                self._task,
                total=max(p.documents_total, 1),
                completed=p.documents_done,
                chunks=p.chunks,
                reused=p.reused,
                rate=f"{p.chunks_per_s:.0f}",
            )
            return
        now = time.monotonic()
        if now - self._last_print >= 2.0 or p.state != "running":
            self._last_print = now
            d = p.as_dict()
            eta = "" if d["eta_s"] is None else f", ETA {_clock(d['eta_s'])}"
            print(
                f"{self.title}: {d['documents_done']}/{d['documents_total']} documents, "
                f"{d['chunks']} chunks ({d['reused']} reused, {d['embedded']} embedded), "
                f"{d['chunks_per_s']} chunks/s{eta} [{d['state']}]",
                file=sys.stderr,
                flush=True,
            )

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
