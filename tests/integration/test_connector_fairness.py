"""Fairness: a small source's new file reaches the parse queue while a 10,000-file initial sync of
another source (same real FTP server) is still running, and lands near the front of the queue
instead of behind the big source's backlog."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from datatorag.connectors.ftp import FtpSettings, FtpSource
from datatorag.connectors.scheduler import ScheduledSource, Scheduler
from datatorag.domain.contracts import parse_message
from tests.fakes.connector_env import ConnectorEnv
from tests.servers.ftp import FileServer

pytestmark = pytest.mark.timeout(180)

BIG_FILES = 10_000


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[ConnectorEnv]:
    e = ConnectorEnv.create(tmp_path)
    yield e
    await e.close()


def ftp(server: FileServer, root: Path, id: str) -> FtpSource:
    return FtpSource(
        id,
        "acme",
        FtpSettings(
            host=server.host,
            port=server.port,
            username=server.user,
            password=SecretStr(server.password),
            root=server.remote(root),
        ),
    )


async def test_small_source_flows_during_big_initial_sync(
    env: ConnectorEnv, ftp_server: FileServer
) -> None:
    big_root = ftp_server.tree()
    for d in range(100):
        sub = big_root / f"dept-{d:03d}"
        sub.mkdir()
        for f in range(BIG_FILES // 100):
            (sub / f"doc-{f:03d}.txt").write_bytes(f"dept {d} doc {f}\n".encode() * 20)
    small_root = ftp_server.tree()
    (small_root / "urgent-policy.txt").write_bytes(b"effective immediately")

    big = ftp(ftp_server, big_root, "big")
    small = ftp(ftp_server, small_root, "small")
    sched = Scheduler(
        registry=env.registry,
        blobstore=env.blobstore,
        parse_queue=env.queue,
        settings=env.settings,
        fetch_slots=4,
        initial_delay=False,
    )
    sched.add(ScheduledSource(big, interval_s=3600, jitter_s=0))
    sched.add(ScheduledSource(small, interval_s=3600, jitter_s=0, enabled=False))
    await sched.start()
    try:
        deadline = time.monotonic() + 60
        # FtpSource.stats is a plain counter with no hook to wait on
        while big.stats["RETR"] < 100 and time.monotonic() < deadline:  # noqa: ASYNC110 - polled
            await asyncio.sleep(0.05)
        assert big.stats["RETR"] >= 100, "the big sync did not get going"
        sched.trigger("acme", "small")  # on demand, as POST /v1/sources/small/sync would
        position = None
        seen = 0
        while position is None and time.monotonic() < deadline:
            batch = await env.queue.receive(10)
            for m in batch:
                seen += 1
                if parse_message(m.body).source == "small":
                    position = seen
            await env.queue.ack_batch(batch)
            if not batch:
                await asyncio.sleep(0.02)
        status = {s["source"]: s for s in sched.status()}
        assert position is not None, "the small source's file never reached the parse queue"
        assert status["big"]["running"], "the big sync must still be running"
        assert big.stats["RETR"] < BIG_FILES
        assert position < 2_000  # near the front, not behind 10,000 big documents
    finally:
        await sched.stop()
    runs = await env.registry.sync_runs("acme", "small")
    assert runs[0].status == "ok" and runs[0].counts["new"] == 1
