"""One HR API record (Workday, Rippling) as a source entry: its audience read from its own
fields, its content stored as the canonical record document the fetch then serves."""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import quote

from datatorag.connectors.audience import RecordAudience
from datatorag.connectors.base import SourceEntry
from datatorag.connectors.http_api import RECORD_CONTENT_TYPE, record_document


def record_entry(
    store: dict[str, bytes],
    *,
    system: str,
    collection: str,
    record_id: str,
    title: str | None,
    row: Any,
    audience: RecordAudience,
    mtime: float | None = None,
) -> SourceEntry:
    """The entry of one record; its bytes go into ``store`` under the entry's ``record_id``.
    A record whose audience cannot be read is an error entry, never indexed for a guess."""
    path = f"{collection}/{quote(record_id, safe='-_.@')}.json"
    key = f"{collection}:{record_id}"
    try:
        groups = audience.groups(row)
    except ValueError as exc:
        return SourceEntry(
            path=path,
            size=None,
            mtime=None,
            record_id=key,
            error_code="bad_audience",
            error=f"{collection} record {record_id}: unreadable audience: {exc}",
        )
    data = record_document(
        system=system,
        collection=collection,
        record_id=record_id,
        title=title,
        record=audience.content(row),
    )
    store[key] = data
    return SourceEntry(
        path=path,
        size=len(data),
        mtime=mtime,
        etag=hashlib.sha256(data).hexdigest()[:32],
        record_id=key,
        content_type=RECORD_CONTENT_TYPE,
        title=title or f"{collection} {record_id}",
        groups=groups,
    )
