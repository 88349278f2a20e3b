"""Document registry on SQLite: versions, current-version pointer, leases and sync runs.

Every conditional change is a single SQL statement whose ``WHERE`` carries the condition (status
rank only moves forward, the current pointer only moves to a higher ``seq``, a lease is taken only
when free, expired or already ours), so it stays correct with several processes on one file.
Timestamps are stored as integer microseconds since the epoch (exact round trip, sortable).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from datatorag.adapters.embedded._sqlite import SqliteWorker
from datatorag.domain.audience import normalise_groups
from datatorag.domain.models import DocumentRecord, DocumentStatus, utcnow
from datatorag.ports.registry import (
    ApiKeyRecord,
    Registry,
    SourceRecord,
    SyncRun,
    check_advance_fields,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS doc_versions (
    tenant TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    version TEXT NOT NULL,
    seq INTEGER NOT NULL,
    source TEXT NOT NULL,
    path TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    status TEXT NOT NULL,
    rank INTEGER NOT NULL,
    reason TEXT,
    error_code TEXT,
    title TEXT,
    doc_type TEXT,
    size INTEGER,
    blob_key TEXT,
    chunk_count INTEGER,
    page_count INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    groups TEXT NOT NULL DEFAULT '["everyone"]',
    PRIMARY KEY (tenant, doc_id, version)
);
CREATE INDEX IF NOT EXISTS doc_versions_updated ON doc_versions (tenant, updated_at);
CREATE TABLE IF NOT EXISTS doc_current (
    tenant TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    version TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (tenant, doc_id)
);
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sync_runs (
    tenant TEXT NOT NULL,
    source TEXT NOT NULL,
    run_id TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (tenant, source, run_id)
);
CREATE INDEX IF NOT EXISTS sync_runs_started ON sync_runs (tenant, source, started_at);
CREATE TABLE IF NOT EXISTS sources (
    tenant TEXT NOT NULL,
    source TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (tenant, source)
);
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0,
    data TEXT NOT NULL
)
"""

_COLUMNS = [
    "tenant", "doc_id", "version", "seq", "source", "path", "content_hash", "status", "rank",
    "reason", "error_code", "title", "doc_type", "size", "blob_key", "chunk_count", "page_count",
    "created_at", "updated_at", "metadata", "groups",
]  # fmt: skip
# Fields ``advance`` may set alongside the status; identity, ordering and timestamps are not.
_NON_FINAL = [s.value for s in DocumentStatus if not s.is_final]
_SELECT = "SELECT v.* FROM doc_versions v"
_JOIN_CURRENT = (
    " JOIN doc_current c ON c.tenant = v.tenant AND c.doc_id = v.doc_id AND c.version = v.version"
)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def _to_us(dt: datetime) -> int:
    """Exact integer microseconds since the epoch (a naive datetime is taken as UTC)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - _EPOCH) // _US


def _from_us(us: int) -> datetime:
    return _EPOCH + us * _US


@cache
def _field_adapter(name: str) -> TypeAdapter[Any]:
    annotation = DocumentRecord.model_fields[name].annotation
    assert annotation is not None, name  # every DocumentRecord field is annotated
    return TypeAdapter(annotation)


def _row_to_record(row: sqlite3.Row) -> DocumentRecord:
    data = {k: row[k] for k in row.keys() if k != "rank"}  # noqa: SIM118 (Row iterates values)
    data["created_at"] = _from_us(data["created_at"])
    data["updated_at"] = _from_us(data["updated_at"])
    data["metadata"] = json.loads(data["metadata"])
    data["groups"] = json.loads(data["groups"])
    return DocumentRecord.model_validate(data)


def _migrate(conn: sqlite3.Connection) -> None:
    """A registry from before audiences: every version gets ``groups`` = everyone (as it was)."""
    columns = {row["name"] for row in conn.execute("PRAGMA table_info(doc_versions)")}
    if "groups" not in columns:
        conn.execute(
            "ALTER TABLE doc_versions ADD COLUMN groups TEXT NOT NULL DEFAULT '[\"everyone\"]'"
        )


def _audience_sql(audience: frozenset[str]) -> tuple[str, Sequence[object]]:
    """Versions whose groups share one with ``audience`` (inside the query, before LIMIT)."""
    if not audience:
        return "0", []
    marks = ", ".join("?" * len(audience))
    clause = f"EXISTS (SELECT 1 FROM json_each(v.groups) g WHERE g.value IN ({marks}))"
    return clause, sorted(audience)


class SqliteRegistry(Registry):
    def __init__(self, path: str | Path) -> None:
        self._db = SqliteWorker(path, name="registry", schema=_SCHEMA, migrate=_migrate)

    # -- versions --------------------------------------------------------------------------
    async def put_version(self, record: DocumentRecord) -> bool:
        status = DocumentStatus(record.status)
        values = {
            **record.model_dump(
                exclude={"created_at", "updated_at", "metadata", "status", "groups"}
            ),
            "status": status.value,
            "rank": status.rank,
            "created_at": _to_us(record.created_at),
            "updated_at": _to_us(record.updated_at),
            "metadata": json.dumps(record.metadata),
            "groups": json.dumps(list(record.groups)),
        }
        cols = ", ".join(_COLUMNS)
        marks = ", ".join(f":{c}" for c in _COLUMNS)

        def insert(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                f"INSERT INTO doc_versions ({cols}) VALUES ({marks}) ON CONFLICT DO NOTHING",
                values,
            )
            if cur.rowcount != 1:
                return False
            # Becomes current unless a version with a higher seq already is.
            conn.execute(
                "INSERT INTO doc_current (tenant, doc_id, version, seq) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (tenant, doc_id) DO UPDATE"
                " SET version = excluded.version, seq = excluded.seq"
                " WHERE excluded.seq >= doc_current.seq",
                (record.tenant, record.doc_id, record.version, record.seq),
            )
            return True

        return await self._db.write(insert)

    async def advance(
        self,
        tenant: str,
        doc_id: str,
        version: str,
        status: DocumentStatus,
        **fields: object,
    ) -> bool:
        status = DocumentStatus(status)
        check_advance_fields(fields)
        sets = {"status": status.value, "rank": status.rank, "updated_at": _to_us(utcnow())}
        for name, value in fields.items():
            value = _field_adapter(name).validate_python(value)
            sets[name] = json.dumps(value) if name == "metadata" else value
        assignments = ", ".join(f"{c} = :{c}" for c in sets)
        params = {**sets, "k_tenant": tenant, "k_doc": doc_id, "k_version": version}
        sql = (
            f"UPDATE doc_versions SET {assignments}"
            " WHERE tenant = :k_tenant AND doc_id = :k_doc AND version = :k_version"
            " AND rank < :rank"
        )
        cur = await self._db.write(lambda c: c.execute(sql, params))
        return cur.rowcount == 1

    async def set_marker(
        self, tenant: str, doc_id: str, version: str, key: str, value: str | None
    ) -> None:
        path = "$." + json.dumps(key)  # a quoted JSON path member: any key is safe
        expr = "json_remove(metadata, ?)" if value is None else "json_set(metadata, ?, ?)"
        args = (path,) if value is None else (path, value)
        sql = (
            f"UPDATE doc_versions SET metadata = {expr}"
            " WHERE tenant = ? AND doc_id = ? AND version = ?"
        )
        await self._db.write(lambda c: c.execute(sql, (*args, tenant, doc_id, version)))

    async def set_groups(
        self, tenant: str, doc_id: str, version: str, groups: Sequence[str]
    ) -> bool:
        stored = json.dumps(list(normalise_groups(groups)))
        sql = (
            "UPDATE doc_versions SET groups = ?, updated_at = MAX(?, updated_at + 1)"
            " WHERE tenant = ? AND doc_id = ? AND version = ?"
        )
        args = (stored, _to_us(utcnow()), tenant, doc_id, version)
        cur = await self._db.write(lambda c: c.execute(sql, args))
        return cur.rowcount == 1

    async def get(self, tenant: str, doc_id: str, version: str) -> DocumentRecord | None:
        row = await self._db.run(
            lambda c: c.execute(
                f"{_SELECT} WHERE v.tenant = ? AND v.doc_id = ? AND v.version = ?",
                (tenant, doc_id, version),
            ).fetchone()
        )
        return _row_to_record(row) if row else None

    async def current(self, tenant: str, doc_id: str) -> DocumentRecord | None:
        row = await self._db.run(
            lambda c: c.execute(
                f"{_SELECT}{_JOIN_CURRENT} WHERE v.tenant = ? AND v.doc_id = ?",
                (tenant, doc_id),
            ).fetchone()
        )
        return _row_to_record(row) if row else None

    async def versions(self, tenant: str, doc_id: str) -> list[DocumentRecord]:
        rows = await self._db.run(
            lambda c: c.execute(
                f"{_SELECT} WHERE v.tenant = ? AND v.doc_id = ? ORDER BY v.seq DESC",
                (tenant, doc_id),
            ).fetchall()
        )
        return [_row_to_record(r) for r in rows]

    async def find(
        self,
        *,
        tenant: str | None = None,
        status: DocumentStatus | Sequence[DocumentStatus] | None = None,
        source: str | None = None,
        all_versions: bool = False,
        limit: int = 1000,
        audience: frozenset[str] | None = None,
    ) -> list[DocumentRecord]:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        where: list[str] = []
        params: list[object] = []
        if audience is not None:
            clause, values = _audience_sql(audience)
            where.append(clause)
            params.extend(values)
        if tenant is not None:
            where.append("v.tenant = ?")
            params.append(tenant)
        if source is not None:
            where.append("v.source = ?")
            params.append(source)
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            if not statuses:
                return []
            where.append(f"v.status IN ({', '.join('?' * len(statuses))})")
            params.extend(DocumentStatus(s).value for s in statuses)
        sql = _SELECT + ("" if all_versions else _JOIN_CURRENT)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY v.updated_at DESC LIMIT ?"
        params.append(limit)
        rows = await self._db.run(lambda c: c.execute(sql, params).fetchall())
        return [_row_to_record(r) for r in rows]

    async def stalled(
        self, older_than_s: float, *, tenant: str | None = None
    ) -> list[DocumentRecord]:
        """Current versions in FETCHED/PARSED/EMBEDDED not updated for ``older_than_s``, oldest
        first."""
        if older_than_s < 0:
            raise ValueError(f"older_than_s must be >= 0, got {older_than_s}")
        cutoff = _to_us(utcnow()) - round(older_than_s * 1_000_000)
        sql = (
            f"{_SELECT}{_JOIN_CURRENT} WHERE v.status IN ({', '.join('?' * len(_NON_FINAL))})"
            " AND v.updated_at < ?"
        )
        params: list[object] = [*_NON_FINAL, cutoff]
        if tenant is not None:
            sql += " AND v.tenant = ?"
            params.append(tenant)
        sql += " ORDER BY v.updated_at"
        rows = await self._db.run(lambda c: c.execute(sql, params).fetchall())
        return [_row_to_record(r) for r in rows]

    # -- leases ----------------------------------------------------------------------------
    async def acquire_lease(self, name: str, owner: str, ttl_s: float) -> bool:
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be > 0, got {ttl_s}")

        def take(conn: sqlite3.Connection) -> bool:
            now = time.time()
            cur = conn.execute(
                "INSERT INTO leases (name, owner, expires_at) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE"
                " SET owner = excluded.owner, expires_at = excluded.expires_at"
                " WHERE leases.owner = excluded.owner OR leases.expires_at <= ?",
                (name, owner, now + ttl_s, now),
            )
            return cur.rowcount == 1

        return await self._db.write(take)

    async def release_lease(self, name: str, owner: str) -> None:
        await self._db.write(
            lambda c: c.execute("DELETE FROM leases WHERE name = ? AND owner = ?", (name, owner))
        )

    # -- sync runs -------------------------------------------------------------------------
    async def record_sync_run(self, run: SyncRun) -> None:
        row = (
            run.tenant,
            run.source,
            run.run_id,
            _to_us(run.started_at),
            run.model_dump_json(),
        )
        await self._db.write(
            lambda c: c.execute(
                "INSERT INTO sync_runs (tenant, source, run_id, started_at, data)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant, source, run_id) DO UPDATE"
                " SET started_at = excluded.started_at, data = excluded.data",
                row,
            )
        )

    async def sync_runs(self, tenant: str, source: str, limit: int = 20) -> list[SyncRun]:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        rows = await self._db.run(
            lambda c: c.execute(
                "SELECT data FROM sync_runs WHERE tenant = ? AND source = ?"
                " ORDER BY started_at DESC, rowid DESC LIMIT ?",
                (tenant, source, limit),
            ).fetchall()
        )
        return [SyncRun.model_validate_json(r["data"]) for r in rows]

    # -- sources ---------------------------------------------------------------------------
    async def put_source(self, record: SourceRecord) -> None:
        row = (record.tenant, record.source, record.model_dump_json())
        await self._db.write(
            lambda c: c.execute(
                "INSERT INTO sources (tenant, source, data) VALUES (?, ?, ?)"
                " ON CONFLICT (tenant, source) DO UPDATE SET data = excluded.data",
                row,
            )
        )

    async def get_source(self, tenant: str, source: str) -> SourceRecord | None:
        row = await self._db.run(
            lambda c: c.execute(
                "SELECT data FROM sources WHERE tenant = ? AND source = ?", (tenant, source)
            ).fetchone()
        )
        return SourceRecord.model_validate_json(row["data"]) if row else None

    async def sources(self, tenant: str) -> list[SourceRecord]:
        rows = await self._db.run(
            lambda c: c.execute(
                "SELECT data FROM sources WHERE tenant = ? ORDER BY source", (tenant,)
            ).fetchall()
        )
        return [SourceRecord.model_validate_json(r["data"]) for r in rows]

    # -- API keys ----------------------------------------------------------------------------
    async def put_api_key(self, record: ApiKeyRecord) -> bool:
        row = (record.key_id, record.tenant, _to_us(record.created_at), record.model_dump_json())

        def insert(c: sqlite3.Connection) -> bool:
            cur = c.execute(
                "INSERT INTO api_keys (key_id, tenant, created_at, data) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (key_id) DO NOTHING",
                row,
            )
            return cur.rowcount == 1

        return await self._db.write(insert)

    async def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
        row = await self._db.run(
            lambda c: c.execute("SELECT data FROM api_keys WHERE key_id = ?", (key_id,)).fetchone()
        )
        return ApiKeyRecord.model_validate_json(row["data"]) if row else None

    async def api_keys(self, tenant: str | None = None) -> list[ApiKeyRecord]:
        sql = "SELECT data FROM api_keys"
        params: tuple[str, ...] = ()
        if tenant is not None:
            sql, params = sql + " WHERE tenant = ?", (tenant,)
        rows = await self._db.run(
            lambda c: c.execute(sql + " ORDER BY created_at, key_id", params).fetchall()
        )
        return [ApiKeyRecord.model_validate_json(r["data"]) for r in rows]

    async def revoke_api_key(
        self, key_id: str, *, at: datetime | None = None, by: str | None = None
    ) -> bool:
        when = at or utcnow()

        def revoke(c: sqlite3.Connection) -> bool:
            row = c.execute(
                "SELECT data FROM api_keys WHERE key_id = ? AND revoked = 0", (key_id,)
            ).fetchone()
            if row is None:
                return False
            record = ApiKeyRecord.model_validate_json(row["data"])
            record = record.model_copy(update={"revoked_at": when, "revoked_by": by})
            cur = c.execute(
                "UPDATE api_keys SET revoked = 1, data = ? WHERE key_id = ? AND revoked = 0",
                (record.model_dump_json(), key_id),
            )
            return cur.rowcount == 1

        return await self._db.write(revoke)

    async def check(self) -> None:
        """Registry reads as the services make them (versions, and the current-version join)
        under the write lock the next ``put_version`` takes; rolled back."""

        def probe(c: sqlite3.Connection) -> None:
            for sql in (f"{_SELECT} LIMIT 10", f"{_SELECT}{_JOIN_CURRENT} LIMIT 10"):
                for row in c.execute(sql).fetchall():
                    _row_to_record(row)

        await self._db.check(probe)

    async def close(self) -> None:
        await self._db.close()
