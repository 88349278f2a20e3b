"""Scheduler: intervals, on-demand triggers, no overlapping syncs of one source, fairness."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from datatorag.adapters.embedded.local_blobstore import LocalBlobStore
from datatorag.adapters.embedded.sqlite_queue import SqliteQueue
from datatorag.adapters.embedded.sqlite_registry import SqliteRegistry
from datatorag.config import Settings
from datatorag.connectors.base import Source, SourceEntry
from datatorag.connectors.folder import FolderSource
from datatorag.connectors.scheduler import ScheduledSource, Scheduler
from datatorag.connectors.sync import SyncOptions
from datatorag.domain.contracts import parse_message
from datatorag.domain.errors import NotFound

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[dict]:
    d = {
        "registry": SqliteRegistry(tmp_path / "reg.db"),
        "blobstore": LocalBlobStore(tmp_path / "blobs"),
        "parse_queue": SqliteQueue(tmp_path / "q.db", name="parse"),
        "settings": Settings(),
    }
    yield d
    await d["parse_queue"].close()
    await d["registry"].close()


class SlowSource(Source):
    """Many entries, each fetch slow: a sync that stays busy while we watch."""

    kind = "slow"

    def __init__(
        self, id: str, n: int, delay_s: float, max_concurrency: int = 2, busy_after: int = 20
    ) -> None:
        super().__init__(id, "acme", max_concurrency=max_concurrency)
        self.n = n
        self.delay_s = delay_s
        self.active = 0
        self.peak = 0
        self.fetched = 0
        self.busy_after = busy_after
        self.busy = asyncio.Event()  # set once ``busy_after`` entries were fetched

    async def list(self):
        for i in range(self.n):
            yield SourceEntry(path=f"{self.id}/{i:05d}.txt", size=None, mtime=None)

    async def fetch(self, entry: SourceEntry):
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            await asyncio.sleep(self.delay_s)
            self.fetched += 1
            if self.fetched >= self.busy_after:
                self.busy.set()
            yield entry.path.encode()
        finally:
            self.active -= 1


async def drain(queue: SqliteQueue) -> list:
    out = []
    while batch := await queue.receive(10):
        out += [parse_message(m.body) for m in batch]
        await queue.ack_batch(batch)
    return out


async def test_interval_runs_and_trigger(parts: dict, tmp_path: Path) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    (root / "a.txt").write_text("a")
    src = FolderSource("docs", "acme", root)
    sched = Scheduler(**parts, initial_delay=False)
    sched.add(ScheduledSource(src, interval_s=3600, jitter_s=0))
    async with sched:
        for _ in range(100):
            if sched.status()[0]["last_run"]:
                break
            await asyncio.sleep(0.05)
        assert [m.path for m in await drain(parts["parse_queue"])] == ["a.txt"]
        (root / "b.txt").write_text("b")
        result = sched.trigger("acme", "docs")  # on demand, long before the hour is up
        assert result["accepted"]
        for _ in range(100):
            msgs = await drain(parts["parse_queue"])
            if msgs:
                break
            await asyncio.sleep(0.05)
        assert [m.path for m in msgs] == ["b.txt"]
        for _ in range(100):
            runs = await parts["registry"].sync_runs("acme", "docs")
            if all(r.finished_at for r in runs):
                break
            await asyncio.sleep(0.05)
        assert [(r.status, r.counts["new"]) for r in runs] == [("ok", 1), ("ok", 1)]
    with pytest.raises(NotFound):
        sched.trigger("acme", "nope")


async def test_trigger_during_run_never_overlaps(parts: dict) -> None:
    src = SlowSource("slow", n=6, delay_s=0.05)
    sched = Scheduler(**parts, initial_delay=False)
    sched.add(ScheduledSource(src, interval_s=3600, jitter_s=0))
    async with sched:
        await asyncio.sleep(0.05)
        for _ in range(5):
            sched.trigger("acme", "slow")  # all while the first run is under way
        for _ in range(200):
            runs = await parts["registry"].sync_runs("acme", "slow")
            if len(runs) == 2 and all(r.finished_at for r in runs):
                break
            await asyncio.sleep(0.05)
    runs = await parts["registry"].sync_runs("acme", "slow")
    # the triggers collapse into one follow-up run, which finds nothing new
    assert len(runs) == 2
    first, second = runs[1], runs[0]
    assert first.finished_at <= second.started_at  # never overlapping
    assert second.counts["unchanged"] == 6
    assert src.peak <= 2  # the source's own concurrency cap


async def test_small_source_not_starved_by_big_initial_sync(parts: dict) -> None:
    big = SlowSource("big", n=10_000, delay_s=0.01, max_concurrency=4)
    small = SlowSource("small", n=1, delay_s=0.0)
    sched = Scheduler(**parts, initial_delay=False, fetch_slots=4)
    sched.add(ScheduledSource(big, interval_s=3600, jitter_s=0))
    async with sched:
        await big.busy.wait()  # 20 entries fetched: the big sync is under way
        sched.add(ScheduledSource(small, interval_s=3600, jitter_s=0))
        for _ in range(200):
            if small.fetched:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        seen = [m.source for m in await drain(parts["parse_queue"])]
        assert "small" in seen
        assert big.fetched < 1000  # the big sync is far from done
        assert sched.status()[0]["running"] is True


async def test_sync_now_returns_the_run(parts: dict) -> None:
    src = SlowSource("one", n=3, delay_s=0.0)
    sched = Scheduler(**parts)
    sched.add(ScheduledSource(src, options=SyncOptions(delete_grace_s=0)))
    run = await sched.sync_now("acme", "one")
    assert run is not None and run.status == "ok" and run.counts["new"] == 3
