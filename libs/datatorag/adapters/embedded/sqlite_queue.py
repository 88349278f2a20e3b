"""Durable local queue on SQLite with SQS semantics: visibility timeout, receive count, DLQ.

Several named queues (parse/embed/index) can share one database file and several processes can
use it at once: every state change is one ``BEGIN IMMEDIATE`` transaction, so two receivers never
get the same message within its visibility timeout. A message whose receive count has reached
``max_receives`` is moved to the DLQ by the receive that would deliver it once more (SQS redrive).

``send_batch`` takes any number of bodies (the port's contract): they are written 10 to a
transaction, the SQS batch size, so a huge batch never holds the write lock for long.

The DLQ lives in the same table (a flag); ``dlq_name`` (``<name><dlq_suffix>``) is its name for
logs and metrics, as on SQS.

Long polling: a ``send`` in this process wakes waiting receivers at once (for any event loop);
messages sent by other processes are noticed by polling every ``poll_interval_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from datatorag.adapters.embedded._sqlite import SqliteWorker
from datatorag.ports.queue import Queue, QueueMessage

MAX_BATCH = 10  # SQS limit for receive and batch calls
MAX_VISIBILITY_S = 43_200  # SQS limit: 12 hours
MAX_DELAY_S = 900  # SQS limit: 15 minutes

_SCHEMA = """
CREATE TABLE IF NOT EXISTS queue_messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    queue TEXT NOT NULL,
    dlq INTEGER NOT NULL DEFAULT 0,
    body TEXT NOT NULL,
    attributes TEXT NOT NULL DEFAULT '{}',
    sent_at REAL NOT NULL,
    visible_at REAL NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt TEXT
);
CREATE INDEX IF NOT EXISTS queue_messages_ready ON queue_messages (queue, dlq, visible_at, seq)
"""


@dataclass(eq=False)  # hashed by identity: each waiter is its own entry
class _Waiter:
    loop: asyncio.AbstractEventLoop
    event: asyncio.Event


# In-process wake-ups: (database path, queue name) -> receivers currently long-polling.
_waiters: dict[tuple[str, str], set[_Waiter]] = {}
_waiters_lock = threading.Lock()


def _notify(key: tuple[str, str]) -> None:
    with _waiters_lock:
        waiters = list(_waiters.get(key, ()))
    for w in waiters:
        with contextlib.suppress(RuntimeError):  # that loop has closed; its receiver is gone
            w.loop.call_soon_threadsafe(w.event.set)


class SqliteQueue(Queue):
    def __init__(
        self,
        path: str | Path,
        name: str,
        visibility_timeout_s: int = 60,
        max_receives: int = 5,
        *,
        poll_interval_s: float = 0.1,
        dlq_suffix: str = "-dlq",
    ) -> None:
        if not name or len(name) > 80:
            raise ValueError(f"queue name must be 1-80 characters, got {name!r}")
        if not dlq_suffix:
            raise ValueError("dlq_suffix must not be empty (the DLQ needs a name of its own)")
        _check_int("visibility_timeout_s", visibility_timeout_s, 0, MAX_VISIBILITY_S)
        _check_int("max_receives", max_receives, 1, 1000)
        if poll_interval_s <= 0:
            raise ValueError(f"poll_interval_s must be > 0, got {poll_interval_s}")
        self.name = name
        self.visibility_timeout_s = visibility_timeout_s
        self.max_receives = max_receives
        self.poll_interval_s = poll_interval_s
        self._dlq_name = f"{name}{dlq_suffix}"
        self._db = SqliteWorker(path, name=f"queue-{name}", schema=_SCHEMA)
        self._key = (str(Path(path).resolve()), name)

    @property
    def dlq_name(self) -> str:
        return self._dlq_name

    # -- sending ---------------------------------------------------------------------------
    async def send(self, body: str, *, delay_s: int = 0) -> str:
        _check_int("delay_s", delay_s, 0, MAX_DELAY_S)
        ids = await self._insert([body], delay_s)
        return ids[0]

    async def send_batch(self, bodies: Sequence[str]) -> list[str]:
        """Any number of bodies, ``MAX_BATCH`` per transaction (as SQS splits them into calls);
        every body is checked before the first is written."""
        bodies = list(bodies)
        _check_bodies(bodies)
        ids: list[str] = []
        for start in range(0, len(bodies), MAX_BATCH):
            ids += await self._insert(bodies[start : start + MAX_BATCH], 0)
        return ids

    async def _insert(self, bodies: list[str], delay_s: int) -> list[str]:
        _check_bodies(bodies)
        ids = [uuid.uuid4().hex for _ in bodies]

        def insert(conn: sqlite3.Connection) -> None:
            now = time.time()
            conn.executemany(
                "INSERT INTO queue_messages (id, queue, body, sent_at, visible_at)"
                " VALUES (?, ?, ?, ?, ?)",
                [(i, self.name, b, now, now + delay_s) for i, b in zip(ids, bodies, strict=True)],
            )

        await self._db.write(insert)
        _notify(self._key)
        return ids

    # -- receiving -------------------------------------------------------------------------
    async def receive(
        self,
        max_messages: int = 10,
        *,
        wait_s: float = 0.0,
        visibility_timeout_s: int | None = None,
    ) -> list[QueueMessage]:
        _check_int("max_messages", max_messages, 1, MAX_BATCH)
        if wait_s < 0 or wait_s > 20:
            raise ValueError(f"wait_s must be within 0..20, got {wait_s}")
        vt = self.visibility_timeout_s if visibility_timeout_s is None else visibility_timeout_s
        _check_int("visibility_timeout_s", vt, 0, MAX_VISIBILITY_S)

        deadline = time.monotonic() + wait_s
        waiter = _Waiter(asyncio.get_running_loop(), asyncio.Event())
        with _waiters_lock:
            _waiters.setdefault(self._key, set()).add(waiter)
        try:
            while True:
                waiter.event.clear()
                got = await self._db.write(lambda c: self._claim(c, max_messages, vt))
                remaining = deadline - time.monotonic()
                if got or remaining <= 0:
                    return got
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        waiter.event.wait(), timeout=min(self.poll_interval_s, remaining)
                    )
        finally:
            with _waiters_lock:
                waiters = _waiters.get(self._key)
                if waiters is not None:
                    waiters.discard(waiter)
                    if not waiters:
                        del _waiters[self._key]

    def _claim(self, conn: sqlite3.Connection, limit: int, vt: int) -> list[QueueMessage]:
        now = time.time()
        out: list[QueueMessage] = []
        while len(out) < limit:
            rows = conn.execute(
                "SELECT id, body, attributes, receive_count FROM queue_messages"
                " WHERE queue = ? AND dlq = 0 AND visible_at <= ? ORDER BY visible_at, seq LIMIT ?",
                (self.name, now, limit - len(out)),
            ).fetchall()
            if not rows:
                break
            for row in rows:
                if row["receive_count"] >= self.max_receives:
                    # Redrive: it was delivered max_receives times and never acknowledged.
                    conn.execute(
                        "UPDATE queue_messages SET dlq = 1, receipt = NULL, visible_at = ?"
                        " WHERE id = ?",
                        (now, row["id"]),
                    )
                    continue
                receipt = uuid.uuid4().hex
                count = row["receive_count"] + 1
                conn.execute(
                    "UPDATE queue_messages SET receive_count = ?, receipt = ?, visible_at = ?"
                    " WHERE id = ?",
                    (count, receipt, now + vt, row["id"]),
                )
                out.append(
                    QueueMessage(
                        id=row["id"],
                        receipt=receipt,
                        body=row["body"],
                        receive_count=count,
                        attributes=json.loads(row["attributes"]),
                    )
                )
        return out

    # -- settling --------------------------------------------------------------------------
    async def ack(self, message: QueueMessage) -> None:
        await self.ack_batch([message])

    async def ack_batch(self, messages: Sequence[QueueMessage]) -> None:
        if not messages:
            return

        def delete(conn: sqlite3.Connection) -> None:
            # Only the newest receipt deletes; a stale one is ignored (at-least-once).
            conn.executemany(
                "DELETE FROM queue_messages WHERE id = ? AND receipt = ? AND dlq = 0",
                [(m.id, m.receipt) for m in messages],
            )

        await self._db.write(delete)

    async def extend(self, message: QueueMessage, visibility_timeout_s: int) -> None:
        _check_int("visibility_timeout_s", visibility_timeout_s, 0, MAX_VISIBILITY_S)
        await self._set_visible_at(message, visibility_timeout_s)

    async def release(self, message: QueueMessage, *, delay_s: int = 0) -> None:
        _check_int("delay_s", delay_s, 0, MAX_VISIBILITY_S)
        await self._set_visible_at(message, delay_s)
        if delay_s == 0:
            _notify(self._key)

    async def _set_visible_at(self, message: QueueMessage, after_s: int) -> None:
        await self._db.write(
            lambda c: c.execute(
                "UPDATE queue_messages SET visible_at = ? WHERE id = ? AND receipt = ? AND dlq = 0",
                (time.time() + after_s, message.id, message.receipt),
            )
        )

    async def dead_letter(self, message: QueueMessage, reason: str) -> None:
        def move(conn: sqlite3.Connection) -> None:
            row = conn.execute(
                "SELECT attributes FROM queue_messages WHERE id = ? AND queue = ? AND dlq = 0",
                (message.id, self.name),
            ).fetchone()
            if row is None:
                return
            attributes = json.loads(row["attributes"]) | {"reason": reason}
            conn.execute(
                "UPDATE queue_messages SET dlq = 1, receipt = NULL, visible_at = ?, attributes = ?"
                " WHERE id = ?",
                (time.time(), json.dumps(attributes), message.id),
            )

        await self._db.write(move)

    # -- inspection ------------------------------------------------------------------------
    async def depth(self) -> int:
        row = await self._db.run(
            lambda c: c.execute(
                "SELECT count(*) FROM queue_messages WHERE queue = ? AND dlq = 0", (self.name,)
            ).fetchone()
        )
        return int(row[0])

    async def dlq_depth(self) -> int:
        row = await self._db.run(
            lambda c: c.execute(
                "SELECT count(*) FROM queue_messages WHERE queue = ? AND dlq = 1", (self.name,)
            ).fetchone()
        )
        return int(row[0])

    async def dlq_messages(self, max_messages: int = 10) -> list[QueueMessage]:
        """Peek: DLQ messages are returned without changing them (oldest first)."""
        if max_messages < 1:
            raise ValueError(f"max_messages must be >= 1, got {max_messages}")
        rows = await self._db.run(
            lambda c: c.execute(
                "SELECT id, body, attributes, receive_count FROM queue_messages"
                " WHERE queue = ? AND dlq = 1 ORDER BY seq LIMIT ?",
                (self.name, max_messages),
            ).fetchall()
        )
        return [
            QueueMessage(
                id=r["id"],
                receipt=f"dlq:{r['id']}",
                body=r["body"],
                receive_count=r["receive_count"],
                attributes=json.loads(r["attributes"]),
            )
            for r in rows
        ]

    # -- dead letters ----------------------------------------------------------------------
    def _dlq_where(self, ids: Sequence[str] | None) -> tuple[str, list[object]]:
        where = "queue = ? AND dlq = 1"
        params: list[object] = [self.name]
        if ids is not None:
            where += f" AND id IN ({', '.join('?' * len(ids))})"
            params.extend(ids)
        return where, params

    async def redrive_dlq(self, ids: Sequence[str] | None = None) -> int:
        """One UPDATE: the message keeps its id, so a second redrive finds nothing to move."""
        if ids is not None and not ids:
            return 0
        where, params = self._dlq_where(ids)
        sql = (
            "UPDATE queue_messages SET dlq = 0, receive_count = 0, receipt = NULL,"
            f" visible_at = ?, attributes = json_remove(attributes, '$.reason') WHERE {where}"
        )
        cur = await self._db.write(lambda c: c.execute(sql, [time.time(), *params]))
        if cur.rowcount:
            _notify(self._key)
        return int(cur.rowcount)

    async def purge_dlq(self, ids: Sequence[str] | None = None) -> int:
        if ids is not None and not ids:
            return 0
        where, params = self._dlq_where(ids)
        cur = await self._db.write(
            lambda c: c.execute(f"DELETE FROM queue_messages WHERE {where}", params)
        )
        return int(cur.rowcount)

    async def check(self) -> None:
        """The receive path itself (claim up to a batch, redrive included), rolled back."""
        await self._db.check(lambda c: self._claim(c, MAX_BATCH, self.visibility_timeout_s))

    async def close(self) -> None:
        await self._db.close()


def _check_bodies(bodies: Sequence[object]) -> None:
    for body in bodies:
        if not isinstance(body, str):
            raise TypeError(f"message body must be str, got {type(body).__name__}")


def _check_int(name: str, value: object, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int (SQS takes whole seconds), got {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be within {lo}..{hi}, got {value}")
