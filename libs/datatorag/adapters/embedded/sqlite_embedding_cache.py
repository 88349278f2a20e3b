"""Embedding cache on SQLite (embedded mode): one row per (model, key), the vector as float32
bytes. ``WITHOUT ROWID`` keeps each lookup one B-tree probe on the primary key."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from datatorag.adapters.embedded._sqlite import SqliteWorker
from datatorag.ports.embedding_cache import EmbeddingCache

_SCHEMA = """
CREATE TABLE IF NOT EXISTS embedding_cache (
    model TEXT NOT NULL,
    key TEXT NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (model, key)
) WITHOUT ROWID
"""
_PER_QUERY = 500  # keys per IN (...): well under SQLite's bound-parameter limit


class SqliteEmbeddingCache(EmbeddingCache):
    def __init__(self, path: str | Path) -> None:
        self._db = SqliteWorker(path, name="embedding-cache", schema=_SCHEMA)

    async def get_many(self, model: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
        wanted = list(dict.fromkeys(keys))

        def read(conn: sqlite3.Connection) -> dict[str, np.ndarray]:
            out: dict[str, np.ndarray] = {}
            for i in range(0, len(wanted), _PER_QUERY):
                part = wanted[i : i + _PER_QUERY]
                rows = conn.execute(
                    "SELECT key, vector FROM embedding_cache"
                    f" WHERE model = ? AND key IN ({', '.join('?' * len(part))})",
                    [model, *part],
                ).fetchall()
                for row in rows:
                    out[row["key"]] = np.frombuffer(row["vector"], dtype=np.float32).copy()
            return out

        if not wanted:
            return {}
        return await self._db.run(read)

    async def put_many(self, model: str, vectors: Mapping[str, np.ndarray]) -> None:
        rows = [
            (model, k, np.ascontiguousarray(v, dtype=np.float32).tobytes())
            for k, v in vectors.items()
        ]
        if rows:
            await self._db.write(
                lambda c: c.executemany(
                    "INSERT OR REPLACE INTO embedding_cache (model, key, vector) VALUES (?, ?, ?)",
                    rows,
                )
            )

    async def check(self) -> None:
        await self._db.check()

    async def close(self) -> None:
        await self._db.close()
