"""Change hints: what a sync records with each version about the listed entry (size, mtime, etag),
and when a listed entry counts as unchanged, so that its download is skipped.

An entry is unchanged when its etag equals the recorded one, or its size and mtime do; or when
they equal the hints remembered for a ``touch`` (new size/mtime, same bytes) of the current
version in the sync state. A failure worth retrying never counts as unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

from datatorag.connectors.base import SourceEntry
from datatorag.domain.models import DocumentRecord, DocumentStatus

# Failures worth retrying at the next sync even when the change hints did not move.
RETRYABLE_CODES = frozenset({"changed_during_fetch", "fetch_error", "vanished"})


def hints_unchanged(
    entry: SourceEntry,
    current: DocumentRecord | None,
    touched: Sequence[str | float | None] | None,
) -> bool:
    """Whether ``entry`` still is ``current`` by its hints; ``touched`` is the ``[size, mtime,
    version]`` remembered in the sync state for the document, if any."""
    if current is None:
        return False
    if current.status == DocumentStatus.DELETED and not deleted_by_user(current):
        return False  # vanished from the source: whatever is listed now is back
    if current.status == DocumentStatus.FAILED and current.error_code in RETRYABLE_CODES:
        return False
    md = current.metadata
    if entry.etag is not None and md.get("src_etag") == entry.etag:
        return True
    if entry.size is None or entry.mtime is None:
        return False
    if same_hints(entry, md.get("src_size"), md.get("src_mtime")):
        return True
    return bool(
        touched and touched[2] == current.version and same_hints(entry, touched[0], touched[1])
    )


def deleted_by_user(record: DocumentRecord) -> bool:
    """Deleted through the API (``DELETE /v1/documents/{id}``): forgotten until the source
    changes it, so the same hints or the same bytes count as unchanged."""
    return record.status == DocumentStatus.DELETED and "deleted_by" in record.metadata


def same_hints(entry: SourceEntry, size: str | float | None, mtime: str | float | None) -> bool:
    """Whether the recorded ``size``/``mtime`` (strings from metadata, numbers from the state)
    equal the entry's; a missing or unparseable value never does."""
    if size is None or mtime is None or entry.mtime is None:
        return False
    try:
        return int(size) == entry.size and abs(float(mtime) - float(entry.mtime)) < 1e-6
    except (TypeError, ValueError):
        return False


def hint_metadata(entry: SourceEntry, content_type: str | None) -> dict[str, str]:
    """The hints recorded with a version of ``entry`` (its ``DocumentRecord.metadata``)."""
    md: dict[str, str] = {}
    if entry.size is not None:
        md["src_size"] = str(entry.size)
    if entry.mtime is not None:
        md["src_mtime"] = repr(float(entry.mtime))
    if entry.etag is not None:
        md["src_etag"] = entry.etag
    if entry.record_id is not None:
        md["record_id"] = entry.record_id
    if content_type:
        md["content_type"] = content_type
    return md
