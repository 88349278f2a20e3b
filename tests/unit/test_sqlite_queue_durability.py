"""SQLite queue beyond the port contract: durability across restarts and SIGKILL, several processes
on one file, several queues per file, and an event loop that never blocks on SQLite."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from datatorag.adapters.embedded.sqlite_queue import SqliteQueue

pytestmark = pytest.mark.timeout(90)

ROOT = Path(__file__).resolve().parents[2]

_PRELUDE = """
import asyncio, json, os, sys, time
from datatorag.adapters.embedded.sqlite_queue import SqliteQueue
db, name = sys.argv[1], sys.argv[2]
"""


def _spawn(code: str, db: Path, name: str, *args: str) -> subprocess.Popen[str]:
    script = _PRELUDE + textwrap.dedent(code)
    return subprocess.Popen(
        [sys.executable, "-c", script, str(db), name, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_ok(proc: subprocess.Popen[str], timeout: float = 60) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return out


async def _drain(q: SqliteQueue, n: int, timeout_s: float = 10) -> list:
    got: list = []
    deadline = time.monotonic() + timeout_s
    while len(got) < n and time.monotonic() < deadline:
        got += await q.receive(10, wait_s=0.5)
    return got


async def test_messages_survive_a_clean_restart(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    out = _wait_ok(
        _spawn(
            """
            async def main():
                q = SqliteQueue(db, name, visibility_timeout_s=30)
                ids = await q.send_batch([f"body-{i}" for i in range(5)])
                await q.close()
                print(json.dumps(ids))
            asyncio.run(main())
            """,
            db,
            "parse",
        )
    )
    sent = set(json.loads(out))
    q = SqliteQueue(db, "parse", visibility_timeout_s=30)
    try:
        got = await _drain(q, 5)
        assert {m.id for m in got} == sent
        assert sorted(m.body for m in got) == [f"body-{i}" for i in range(5)]
    finally:
        await q.close()


async def test_sent_messages_survive_sigkill(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    proc = _spawn(
        """
        async def main():
            q = SqliteQueue(db, name)
            for i in range(20):
                await q.send(f"m{i}")
            print("sent", flush=True)
            await asyncio.sleep(60)  # killed here, without close()
        asyncio.run(main())
        """,
        db,
        "embed",
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "sent"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    q = SqliteQueue(db, "embed")
    try:
        assert await q.depth() == 20
        got = await _drain(q, 20)
        assert sorted(m.body for m in got) == sorted(f"m{i}" for i in range(20))
    finally:
        await q.close()


async def test_in_flight_message_of_a_killed_worker_is_redelivered(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    q = SqliteQueue(db, "index", visibility_timeout_s=1)
    try:
        msg_id = await q.send("work")
        proc = _spawn(
            """
            async def main():
                q = SqliteQueue(db, name, visibility_timeout_s=1)
                [m] = await q.receive(1, wait_s=5)
                print(m.id, flush=True)
                await asyncio.sleep(60)  # dies mid-work, never acks
            asyncio.run(main())
            """,
            db,
            "index",
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == msg_id
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        [m] = await _drain(q, 1)
        assert m.id == msg_id and m.receive_count == 2
    finally:
        await q.close()


async def test_processes_receiving_concurrently_never_share_a_message(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    q = SqliteQueue(db, "parse", visibility_timeout_s=60)
    total = 120
    try:
        for start in range(0, total, 10):
            await q.send_batch([f"m{i}" for i in range(start, start + 10)])
        consumer = """
            async def main():
                q = SqliteQueue(db, name, visibility_timeout_s=60)
                seen = []
                idle_since = time.monotonic()
                while time.monotonic() - idle_since < 1.5:
                    got = await q.receive(3, wait_s=0.2)
                    if got:
                        idle_since = time.monotonic()
                        seen += [m.body for m in got]
                        await q.ack_batch(got)
                await q.close()
                print(json.dumps(seen))
            asyncio.run(main())
            """
        procs = [_spawn(consumer, db, "parse") for _ in range(3)]
        outputs = await asyncio.gather(*(asyncio.to_thread(_wait_ok, p) for p in procs))
        bodies = [b for out in outputs for b in json.loads(out)]
        assert len(bodies) == total, "messages were lost or delivered twice"
        assert sorted(bodies) == sorted(f"m{i}" for i in range(total))
        assert await q.depth() == 0
    finally:
        await q.close()


async def test_processes_sending_concurrently_lose_nothing(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    producer = """
        async def main():
            q = SqliteQueue(db, name)
            for i in range(40):
                await q.send(f"{sys.argv[3]}-{i}")
            await q.close()
        asyncio.run(main())
        """
    procs = [_spawn(producer, db, "parse", f"p{n}") for n in range(3)]
    await asyncio.gather(*(asyncio.to_thread(_wait_ok, p) for p in procs))
    q = SqliteQueue(db, "parse")
    try:
        assert await q.depth() == 120
    finally:
        await q.close()


async def test_long_poll_sees_a_message_sent_by_another_process(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    q = SqliteQueue(db, "parse", poll_interval_s=0.1)
    try:
        await q.check()  # creates the schema before the other process starts
        waiting = asyncio.create_task(q.receive(1, wait_s=15))
        await asyncio.sleep(0.3)
        _wait_ok(
            _spawn(
                """
                async def main():
                    q = SqliteQueue(db, name)
                    await q.send("from-afar")
                    await q.close()
                asyncio.run(main())
                """,
                db,
                "parse",
            )
        )
        got = await asyncio.wait_for(waiting, timeout=14)
        assert [m.body for m in got] == ["from-afar"]
    finally:
        await q.close()


async def test_queues_sharing_a_file_are_independent(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    parse, embed = SqliteQueue(db, "parse", max_receives=1), SqliteQueue(db, "embed")
    try:
        await parse.send("p")
        await embed.send_batch(["e1", "e2"])
        assert (await parse.depth(), await embed.depth()) == (1, 2)
        [m] = await parse.receive(10)
        assert m.body == "p"
        await parse.dead_letter(m, "bad")
        assert await embed.dlq_messages() == []
        assert [d.body for d in await parse.dlq_messages()] == ["p"]
        assert sorted(x.body for x in await embed.receive(10)) == ["e1", "e2"]
    finally:
        await parse.close()
        await embed.close()


async def test_event_loop_keeps_running_while_sqlite_waits_for_a_lock(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    q = SqliteQueue(db, "parse")
    await q.check()
    blocker = sqlite3.connect(db, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        send = asyncio.create_task(q.send("waits for the lock"))
        ticks = 0
        for _ in range(10):
            await asyncio.sleep(0.05)
            ticks += 1
        assert ticks == 10
        assert not send.done()  # still waiting on busy_timeout, in its own thread
        blocker.execute("COMMIT")
        await asyncio.wait_for(send, timeout=10)
        assert await q.depth() == 1
    finally:
        blocker.close()
        await q.close()


async def test_redrive_and_dead_letter_reason_survive_restart(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    q = SqliteQueue(db, "parse", max_receives=1)
    await q.send("poison")
    [m] = await q.receive(1)
    await q.dead_letter(m, "corrupt")
    await q.close()
    q = SqliteQueue(db, "parse", max_receives=1)
    try:
        [d] = await q.dlq_messages()
        assert (d.body, d.attributes) == ("poison", {"reason": "corrupt"})
        assert await q.depth() == 0
    finally:
        await q.close()


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"visibility_timeout_s": 1.5}, TypeError),  # SQS takes whole seconds
        ({"visibility_timeout_s": -1}, ValueError),
        ({"max_receives": 0}, ValueError),
        ({"name": ""}, ValueError),
    ],
)
def test_bad_configuration_is_rejected(tmp_path: Path, kwargs: dict, error: type) -> None:
    args = {"path": tmp_path / "q.db", "name": "parse"} | kwargs
    with pytest.raises(error):
        SqliteQueue(**args)


async def test_bad_receive_arguments_are_rejected(tmp_path: Path) -> None:
    q = SqliteQueue(tmp_path / "q.db", "parse")
    try:
        with pytest.raises(ValueError):
            await q.receive(11)
        with pytest.raises(ValueError):
            await q.receive(0)
        with pytest.raises(TypeError):
            await q.receive(1, visibility_timeout_s=0.5)  # type: ignore[arg-type]
    finally:
        await q.close()


def test_database_uses_wal(tmp_path: Path) -> None:
    db = tmp_path / "q.db"

    async def create() -> None:
        q = SqliteQueue(db, "parse")
        await q.send("x")
        await q.close()

    asyncio.run(create())
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert os.path.exists(db)
