"""``Registry`` in memory: versions, the current-version pointer, leases and sync runs.

Every conditional change (status rank only moves forward, the current pointer only moves to a
higher or equal ``seq``, a lease is taken only when free, expired or already ours) is decided and
made in one step with no ``await`` in between, so concurrent tasks see the same outcomes as with
the SQLite and DynamoDB adapters' conditional writes. Records are copied in and out: a caller
mutating a record it got changes nothing stored.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from datatorag.domain.audience import normalise_groups, visible
from datatorag.domain.models import DocumentRecord, DocumentStatus, utcnow
from datatorag.ports.registry import (
    ApiKeyRecord,
    Registry,
    SourceRecord,
    SyncRun,
    check_advance_fields,
)
from datatorag.testing.memory.clock import Clock

_US = timedelta(microseconds=1)


@dataclass
class _Current:
    version: str
    seq: int


@dataclass
class _Lease:
    owner: str
    expires_at: float


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt


class MemoryRegistry(Registry):
    def __init__(self, *, clock: Clock = time.monotonic) -> None:
        self._clock = clock  # leases only; record timestamps are wall-clock UTC, as stored
        self._versions: dict[tuple[str, str, str], DocumentRecord] = {}
        self._current: dict[tuple[str, str], _Current] = {}
        self._leases: dict[str, _Lease] = {}
        # (tenant, source, run_id) -> (order of first insert, run); a replace keeps its order
        self._runs: dict[tuple[str, str, str], tuple[int, SyncRun]] = {}
        self._sources: dict[tuple[str, str], SourceRecord] = {}
        self._keys: dict[str, ApiKeyRecord] = {}
        self._run_order = 0

    # -- versions --------------------------------------------------------------------------
    async def put_version(self, record: DocumentRecord) -> bool:
        stored = DocumentRecord.model_validate(record.model_dump())  # a validated, deep copy
        await asyncio.sleep(0)
        key = (stored.tenant, stored.doc_id, stored.version)
        if key in self._versions:
            return False
        self._versions[key] = stored
        doc = (stored.tenant, stored.doc_id)
        current = self._current.get(doc)
        if current is None or stored.seq >= current.seq:
            self._current[doc] = _Current(stored.version, stored.seq)
        return True

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
        await asyncio.sleep(0)
        record = self._versions.get((tenant, doc_id, version))
        if record is None or status.rank <= record.status.rank:
            return False
        # strictly later than the last update, however fast the calls come
        updated_at = max(utcnow(), _utc(record.updated_at) + _US)
        self._versions[(tenant, doc_id, version)] = DocumentRecord.model_validate(
            {**record.model_dump(), **fields, "status": status, "updated_at": updated_at}
        )
        return True

    async def set_marker(
        self, tenant: str, doc_id: str, version: str, key: str, value: str | None
    ) -> None:
        await asyncio.sleep(0)
        record = self._versions.get((tenant, doc_id, version))
        if record is None:
            return
        metadata = dict(record.metadata)
        if value is None:
            metadata.pop(key, None)
        else:
            metadata[key] = value
        # status and updated_at stay: a marker is bookkeeping, not progress
        self._versions[(tenant, doc_id, version)] = record.model_copy(update={"metadata": metadata})

    async def set_groups(
        self, tenant: str, doc_id: str, version: str, groups: Sequence[str]
    ) -> bool:
        stored = normalise_groups(groups)
        await asyncio.sleep(0)
        record = self._versions.get((tenant, doc_id, version))
        if record is None:
            return False
        updated_at = max(utcnow(), _utc(record.updated_at) + _US)
        self._versions[(tenant, doc_id, version)] = record.model_copy(
            update={"groups": stored, "updated_at": updated_at}
        )
        return True

    async def get(self, tenant: str, doc_id: str, version: str) -> DocumentRecord | None:
        await asyncio.sleep(0)
        record = self._versions.get((tenant, doc_id, version))
        return None if record is None else record.model_copy(deep=True)

    def _current_record(self, tenant: str, doc_id: str) -> DocumentRecord | None:
        current = self._current.get((tenant, doc_id))
        if current is None:
            return None
        return self._versions[(tenant, doc_id, current.version)]

    def _is_current(self, record: DocumentRecord) -> bool:
        current = self._current.get((record.tenant, record.doc_id))
        return current is not None and current.version == record.version

    async def current(self, tenant: str, doc_id: str) -> DocumentRecord | None:
        await asyncio.sleep(0)
        record = self._current_record(tenant, doc_id)
        return None if record is None else record.model_copy(deep=True)

    async def versions(self, tenant: str, doc_id: str) -> list[DocumentRecord]:
        await asyncio.sleep(0)
        found = [r for (t, d, _), r in self._versions.items() if t == tenant and d == doc_id]
        found.sort(key=lambda r: r.seq, reverse=True)
        return [r.model_copy(deep=True) for r in found]

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
        statuses: set[DocumentStatus] | None = None
        if status is not None:
            wanted = [status] if isinstance(status, str) else list(status)
            statuses = {DocumentStatus(s) for s in wanted}
        await asyncio.sleep(0)
        found = [
            r
            for r in self._versions.values()
            if (tenant is None or r.tenant == tenant)
            and (source is None or r.source == source)
            and (statuses is None or r.status in statuses)
            and (all_versions or self._is_current(r))
            and visible(r.groups, audience)
        ]
        found.sort(key=lambda r: _utc(r.updated_at), reverse=True)
        return [r.model_copy(deep=True) for r in found[:limit]]

    async def stalled(
        self, older_than_s: float, *, tenant: str | None = None
    ) -> list[DocumentRecord]:
        """Current versions in FETCHED/PARSED/EMBEDDED not updated for ``older_than_s``, oldest
        first."""
        if older_than_s < 0:
            raise ValueError(f"older_than_s must be >= 0, got {older_than_s}")
        await asyncio.sleep(0)
        cutoff = utcnow() - timedelta(seconds=older_than_s)
        found = [
            r
            for r in self._versions.values()
            if not r.status.is_final
            and _utc(r.updated_at) < cutoff
            and (tenant is None or r.tenant == tenant)
            and self._is_current(r)
        ]
        found.sort(key=lambda r: _utc(r.updated_at))
        return [r.model_copy(deep=True) for r in found]

    # -- leases ----------------------------------------------------------------------------
    async def acquire_lease(self, name: str, owner: str, ttl_s: float) -> bool:
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be > 0, got {ttl_s}")
        await asyncio.sleep(0)
        now = self._clock()
        lease = self._leases.get(name)
        if lease is not None and lease.owner != owner and lease.expires_at > now:
            return False
        self._leases[name] = _Lease(owner, now + ttl_s)
        return True

    async def release_lease(self, name: str, owner: str) -> None:
        await asyncio.sleep(0)
        lease = self._leases.get(name)
        if lease is not None and lease.owner == owner:
            del self._leases[name]

    # -- sync runs -------------------------------------------------------------------------
    async def record_sync_run(self, run: SyncRun) -> None:
        stored = SyncRun.model_validate(run.model_dump())
        await asyncio.sleep(0)
        key = (stored.tenant, stored.source, stored.run_id)
        existing = self._runs.get(key)
        if existing is None:
            self._run_order += 1
            order = self._run_order
        else:
            order = existing[0]
        self._runs[key] = (order, stored)

    async def sync_runs(self, tenant: str, source: str, limit: int = 20) -> list[SyncRun]:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        await asyncio.sleep(0)
        runs = [
            (order, run)
            for (t, s, _), (order, run) in self._runs.items()
            if t == tenant and s == source
        ]
        runs.sort(key=lambda item: (_utc(item[1].started_at), item[0]), reverse=True)
        return [run.model_copy(deep=True) for _, run in runs[:limit]]

    # -- sources ---------------------------------------------------------------------------
    async def put_source(self, record: SourceRecord) -> None:
        await asyncio.sleep(0)
        self._sources[(record.tenant, record.source)] = record.model_copy(deep=True)

    async def get_source(self, tenant: str, source: str) -> SourceRecord | None:
        await asyncio.sleep(0)
        found = self._sources.get((tenant, source))
        return None if found is None else found.model_copy(deep=True)

    async def sources(self, tenant: str) -> list[SourceRecord]:
        await asyncio.sleep(0)
        return [
            r.model_copy(deep=True) for (t, _), r in sorted(self._sources.items()) if t == tenant
        ]

    # -- API keys --------------------------------------------------------------------------
    async def put_api_key(self, record: ApiKeyRecord) -> bool:
        stored = ApiKeyRecord.model_validate(record.model_dump())
        await asyncio.sleep(0)
        if stored.key_id in self._keys:
            return False
        self._keys[stored.key_id] = stored
        return True

    async def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
        await asyncio.sleep(0)
        found = self._keys.get(key_id)
        return None if found is None else found.model_copy(deep=True)

    async def api_keys(self, tenant: str | None = None) -> list[ApiKeyRecord]:
        await asyncio.sleep(0)
        found = [k for k in self._keys.values() if tenant is None or k.tenant == tenant]
        found.sort(key=lambda k: (_utc(k.created_at), k.key_id))
        return [k.model_copy(deep=True) for k in found]

    async def revoke_api_key(
        self, key_id: str, *, at: datetime | None = None, by: str | None = None
    ) -> bool:
        await asyncio.sleep(0)
        found = self._keys.get(key_id)
        if found is None or found.revoked_at is not None:
            return False
        self._keys[key_id] = found.model_copy(
            update={"revoked_at": at or utcnow(), "revoked_by": by}
        )
        return True

    async def check(self) -> None:
        await asyncio.sleep(0)
