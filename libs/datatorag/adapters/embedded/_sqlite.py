"""One SQLite connection owned by one worker thread, so blocking calls never block the event loop.

Shared by the SQLite queue and registry. The connection runs in autocommit mode and write
transactions start with ``BEGIN IMMEDIATE`` (take the write lock up front, so two processes never
deadlock upgrading a read lock); ``busy_timeout`` makes concurrent writers in other processes wait
instead of failing. WAL lets readers proceed while one process writes, and ``synchronous=FULL``
makes a committed transaction survive power loss, not only a process crash.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from datatorag.domain.errors import DependencyError

T = TypeVar("T")


class SqliteWorker:
    def __init__(
        self,
        path: str | Path,
        *,
        name: str,
        schema: str,
        busy_timeout_s: float = 30.0,
        migrate: Callable[[sqlite3.Connection], None] | None = None,
    ):
        """``migrate`` runs after the schema, in the same transaction: what ``CREATE ... IF NOT
        EXISTS`` cannot do for a file written by an older version (a new column)."""
        self.path = Path(path)
        self._name = name
        self._schema = schema
        self._migrate = migrate
        self._busy_timeout_s = busy_timeout_s
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"sqlite-{name}")
        self._conn: sqlite3.Connection | None = None
        self._closed = False

    # -- runs in the worker thread ---------------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(
                    self.path, timeout=self._busy_timeout_s, isolation_level=None
                )
                conn.row_factory = sqlite3.Row
                conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_s * 1000)}")
                self._prepare(conn)
            except (sqlite3.Error, OSError) as exc:
                raise DependencyError(f"sqlite:{self.path}", str(exc)) from exc
            self._conn = conn
        return self._conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        """WAL, schema and migrations. Several connections opening one new file at once (the
        queues of ``datatorag up`` share it) can meet "database is locked" while one of them
        switches the file to WAL, a step SQLite does not retry through the busy handler: retried
        here, within the busy timeout."""
        deadline = time.monotonic() + self._busy_timeout_s
        delay = 0.01
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                with _write(conn):
                    for statement in _statements(self._schema):
                        conn.execute(statement)
                    if self._migrate is not None:
                        self._migrate(conn)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay)  # the worker thread's own connection: nothing else waits on it
                delay = min(delay * 2, 0.5)

    # -- public ----------------------------------------------------------------------------
    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` in the worker thread."""
        if self._closed:
            raise RuntimeError(f"{self._name}: closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(self._connection()))

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` inside one ``BEGIN IMMEDIATE`` transaction."""

        def tx(conn: sqlite3.Connection) -> T:
            with _write(conn):
                return fn(conn)

        return await self.run(tx)

    async def check(self, probe: Callable[[sqlite3.Connection], object] | None = None) -> None:
        """Run ``probe`` (the adapter's own hot path) in a write transaction that is rolled back,
        so it takes the write lock and reads the pages the real call reads, and changes nothing.
        ``SELECT 1`` alone passed on a database with corrupted pages."""

        def tx(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                if probe is None:
                    conn.execute("SELECT 1").fetchone()
                else:
                    probe(conn)
            finally:
                conn.rollback()

        try:
            await self.run(tx)
        except (sqlite3.Error, OSError) as exc:
            raise DependencyError(f"sqlite:{self.path}", str(exc)) from exc

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True

        def shut() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, shut)
        self._executor.shutdown(wait=True)


@contextmanager
def _write(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _statements(script: str) -> Iterator[str]:
    for part in script.split(";"):
        if part.strip():
            yield part
