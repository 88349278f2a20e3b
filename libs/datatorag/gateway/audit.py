"""The audit trail: one structured line per request (REST and gRPC), event ``audit`` on the
``gateway.audit`` logger: who (``principal``: the key id or the token subject, never a secret),
``tenant``, ``role``, ``transport``, ``route`` (the template, not the raw path), ``status``,
``query_hash`` (SHA-256 of the query text: which requests asked the same thing, without keeping
what was asked), ``doc_ids`` (every document the response returned, in order), the client
address, the request id (bound into every log line) and ``duration_ms``. A refused request has
its ``reason``.

The transports open an entry per request (``open_entry``); the routes note the query and the
documents they return into it (``note_query``, ``note_documents``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from contextvars import ContextVar, Token
from dataclasses import dataclass, field

from datatorag.domain.principal import Principal
from datatorag.observability.log import get_logger


@dataclass
class AuditEntry:
    principal: Principal | None = None
    query_hash: str | None = None
    doc_ids: list[str] = field(default_factory=list)
    reason: str | None = None


_entry: ContextVar[AuditEntry | None] = ContextVar("datatorag_audit_entry", default=None)


def open_entry() -> tuple[AuditEntry, Token[AuditEntry | None]]:
    entry = AuditEntry()
    return entry, _entry.set(entry)


def close_entry(token: Token[AuditEntry | None]) -> None:
    _entry.reset(token)


def current() -> AuditEntry | None:
    return _entry.get()


def query_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def note_query(text: str) -> None:
    entry = _entry.get()
    if entry is not None:
        entry.query_hash = query_hash(text)


def note_documents(doc_ids: Iterable[str]) -> None:
    entry = _entry.get()
    if entry is not None:
        seen = set(entry.doc_ids)
        for doc_id in doc_ids:
            if doc_id not in seen:
                seen.add(doc_id)
                entry.doc_ids.append(doc_id)


def emit(
    entry: AuditEntry,
    *,
    transport: str,
    method: str,
    route: str,
    status: int | str,
    duration_ms: float,
    client: str | None,
) -> None:
    p = entry.principal
    # a logger bound now, not one cached at import: the audit line always goes through the
    # processors configured at this moment (structlog's capture in tests, a reconfigured sink)
    get_logger("gateway.audit").info(
        "audit",
        transport=transport,
        principal=p.subject if p else None,
        tenant=p.tenant if p else None,
        role=p.role if p else None,
        method=method,
        route=route,
        status=status,
        query_hash=entry.query_hash,
        doc_ids=entry.doc_ids,
        client=client,
        reason=entry.reason,
        duration_ms=duration_ms,
    )
