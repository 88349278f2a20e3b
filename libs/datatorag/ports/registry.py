"""Document registry port: one record per document version, plus connector leases and sync runs."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field

from datatorag.domain.models import DocumentRecord, DocumentStatus, utcnow

# What ``advance`` may set besides the status: identity, ordering and timestamps are the registry's,
# and an audience changes through ``set_groups`` alone.
ADVANCE_FIELDS = frozenset(DocumentRecord.model_fields) - {
    "tenant", "doc_id", "version", "seq", "status", "created_at", "updated_at", "groups",
}  # fmt: skip


def check_advance_fields(fields: dict[str, object]) -> None:
    """Every adapter refuses the same unknown fields with the same message."""
    unknown = set(fields) - ADVANCE_FIELDS
    if unknown:
        raise ValueError(f"advance cannot set {sorted(unknown)}; allowed: {sorted(ADVANCE_FIELDS)}")


class RunType(StrEnum):
    """What a run did: a source's first full pass, a later incremental one, or a reindex."""

    BATCH = "BATCH"
    INCREMENTAL = "INCREMENTAL"
    REINDEX = "REINDEX"


class RunTrigger(StrEnum):
    USER = "USER"  # POST /v1/sources/{id}/sync, an upload, the CLI
    SCHEDULED = "SCHEDULED"  # the source's interval
    EVENT = "EVENT"  # a storage event (S3 notification)


class SyncRun(BaseModel):
    """One run of one source (the planning documents' ingestion job)."""

    tenant: str
    source: str
    run_id: str
    started_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
    status: str = "running"  # running | ok | failed
    error: str | None = None
    # seen/new/changed/unchanged/deleted/failed (sync); documents/chunks/embedded (reindex)
    counts: dict[str, int] = Field(default_factory=dict)
    type: RunType = RunType.INCREMENTAL
    trigger: RunTrigger = RunTrigger.SCHEDULED
    errors: list[dict[str, str]] = Field(default_factory=list)  # the first few, path/code/reason


class SourceRecord(BaseModel):
    """A configured source as the connector last registered it, so that the gateway can serve
    ``GET /v1/sources`` from the registry alone. ``deleted_at`` set: deleted through the API;
    the connector no longer syncs it."""

    tenant: str
    source: str
    kind: str
    interval_s: float | None = None
    enabled: bool = True
    next_run_at: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)
    deleted_at: datetime | None = None
    deleted_by: str | None = None


class ApiKeyRecord(BaseModel):
    """An API key as the registry keeps it: never the key, only a salted hash of its secret.

    A key reads ``dtr_<key_id>_<secret>``; ``key_id`` finds the record, the secret is checked
    against ``hash`` (``datatorag.gateway.api_keys`` says how it is derived). ``prefix`` is the
    first characters of the key, to recognise it in a listing. ``revoked_at`` set: refused."""

    key_id: str
    tenant: str
    role: Literal["reader", "admin"] = "reader"
    groups: list[str] = Field(default_factory=list)
    name: str = ""
    algorithm: str  # how ``hash`` was derived from the secret and ``salt`` (hex), e.g. scrypt
    salt: str
    hash: str
    prefix: str
    created_at: datetime = Field(default_factory=utcnow)
    created_by: str | None = None
    revoked_at: datetime | None = None
    revoked_by: str | None = None


class Registry(abc.ABC):
    """Contract (``datatorag.testing.conformance.registry``):

    * ``put_version`` stores a new version (status FETCHED) and makes it the document's current
      version unless a version with a higher ``seq`` is already current. Storing an existing
      (tenant, doc_id, version) again is a no-op that returns False.
    * ``advance`` moves one version's status forward only (``DocumentStatus.rank``): a late or
      duplicate message can never move INDEXED back to PARSED nor revive FAILED/DELETED. It
      returns False, changing nothing, when the move is not forward or the version is unknown.
      Extra ``fields`` (chunk_count, page_count, title, doc_type, reason, error_code) are set
      with it.
    * ``fail`` is ``advance(..., FAILED, reason=...)``.
    * ``current`` returns the current version's record; ``get`` one version's.
    * ``find`` lists records (current versions only unless ``all_versions``), filtered by tenant,
      status and source, newest ``updated_at`` first; with ``audience`` (a set of groups) only
      records sharing a group with it, inside the query, so ``limit`` visible records come back
      whenever that many exist (``None``: every audience).
    * ``set_groups`` replaces one version's ``groups`` without touching its status, and moves
      its ``updated_at`` (what invalidates cached answers: ``answering.cache``); returns False
      for an unknown version. Records stored before audiences
      existed read as ``(EVERYONE,)``.
    * ``stalled`` lists current versions in a non-final status not updated for ``older_than_s``.
    * ``set_marker`` sets (or, with ``None``, removes) one ``metadata`` entry of one version
      without touching its status; an unknown version is a no-op. The pipeline keeps its crash
      markers there (``datatorag.pipeline.crash_guard``).
    * Sources: ``put_source`` inserts or replaces one (keyed by tenant, source); ``get_source``
      returns it or None; ``sources(tenant)`` lists a tenant's sources ordered by id.
    * API keys: ``put_api_key`` stores a new key record and returns False (changing nothing)
      when its ``key_id`` exists; ``get_api_key`` returns it (revoked or not) or None;
      ``api_keys`` lists the records of one tenant (or every tenant), oldest first;
      ``revoke_api_key`` sets ``revoked_at``/``revoked_by`` once and returns True, False for an
      unknown or already revoked key.
    * Leases: ``acquire_lease`` succeeds when the lease is free, expired or already held by
      ``owner`` (renewal); ``release_lease`` frees it only for its owner.
    """

    @abc.abstractmethod
    async def put_version(self, record: DocumentRecord) -> bool: ...

    @abc.abstractmethod
    async def advance(
        self,
        tenant: str,
        doc_id: str,
        version: str,
        status: DocumentStatus,
        **fields: object,
    ) -> bool: ...

    async def fail(
        self, tenant: str, doc_id: str, version: str, reason: str, *, code: str = "permanent"
    ) -> bool:
        return await self.advance(
            tenant, doc_id, version, DocumentStatus.FAILED, reason=reason, error_code=code
        )

    @abc.abstractmethod
    async def get(self, tenant: str, doc_id: str, version: str) -> DocumentRecord | None: ...

    @abc.abstractmethod
    async def current(self, tenant: str, doc_id: str) -> DocumentRecord | None: ...

    @abc.abstractmethod
    async def versions(self, tenant: str, doc_id: str) -> list[DocumentRecord]:
        """All versions of a document, newest ``seq`` first."""

    @abc.abstractmethod
    async def find(
        self,
        *,
        tenant: str | None = None,
        status: DocumentStatus | Sequence[DocumentStatus] | None = None,
        source: str | None = None,
        all_versions: bool = False,
        limit: int = 1000,
        audience: frozenset[str] | None = None,
    ) -> list[DocumentRecord]: ...

    @abc.abstractmethod
    async def stalled(
        self, older_than_s: float, *, tenant: str | None = None
    ) -> list[DocumentRecord]: ...

    @abc.abstractmethod
    async def set_groups(
        self, tenant: str, doc_id: str, version: str, groups: Sequence[str]
    ) -> bool: ...

    @abc.abstractmethod
    async def set_marker(
        self, tenant: str, doc_id: str, version: str, key: str, value: str | None
    ) -> None: ...

    @abc.abstractmethod
    async def acquire_lease(self, name: str, owner: str, ttl_s: float) -> bool: ...

    @abc.abstractmethod
    async def release_lease(self, name: str, owner: str) -> None: ...

    @abc.abstractmethod
    async def record_sync_run(self, run: SyncRun) -> None:
        """Insert or replace the run (keyed by tenant, source, run_id)."""

    @abc.abstractmethod
    async def sync_runs(self, tenant: str, source: str, limit: int = 20) -> list[SyncRun]:
        """Newest first."""

    @abc.abstractmethod
    async def put_source(self, record: SourceRecord) -> None: ...

    @abc.abstractmethod
    async def get_source(self, tenant: str, source: str) -> SourceRecord | None: ...

    @abc.abstractmethod
    async def sources(self, tenant: str) -> list[SourceRecord]:
        """The tenant's sources, ordered by source id."""

    @abc.abstractmethod
    async def put_api_key(self, record: ApiKeyRecord) -> bool: ...

    @abc.abstractmethod
    async def get_api_key(self, key_id: str) -> ApiKeyRecord | None: ...

    @abc.abstractmethod
    async def api_keys(self, tenant: str | None = None) -> list[ApiKeyRecord]:
        """The keys of ``tenant`` (every tenant's when None), oldest ``created_at`` first."""

    @abc.abstractmethod
    async def revoke_api_key(
        self, key_id: str, *, at: datetime | None = None, by: str | None = None
    ) -> bool: ...

    @abc.abstractmethod
    async def check(self) -> None:
        """Raise ``DependencyError`` when the registry is missing, unreachable, or a read as the
        services make one fails (a corrupted SQLite page, a missing DynamoDB permission)."""

    async def close(self) -> None:
        pass
