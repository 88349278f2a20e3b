"""Who may see a source's documents: the audience a sync gives each document version.

Per document, the first of these that applies:

1. an upload's ``audience`` field (``POST /v1/documents``), kept by the landing zone in a sidecar
   (``.audience/<name>.json`` next to the file, never listed as a document) that the uploads
   source reads (``Source.sidecar_audience``);
2. the record's own audience fields, for Workday and Rippling records (``audience_field``: a
   field naming groups; ``confidential_field``: a flag restricting the record to
   ``confidential_audience``), see ``record_groups``;
3. the source's ``audience_rules``, in order, the first whose glob matches the path
   (``managers/** -> [managers, hr]``);
4. the source's ``audience`` (default: ``everyone``).

A change of audience for unchanged content is applied without re-embedding: the sync sends a
``DocumentAudience`` message and the indexer rewrites the groups in the registry and the index.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from datatorag.connectors.paths import matches
from datatorag.domain.audience import DEFAULT_GROUPS, normalise_groups

SIDECAR_DIR = ".audience"
_TRUE = frozenset({"true", "yes", "y", "1", "confidential"})


def sidecar_path(path: str) -> str:
    """Where the audience of the upload at ``path`` is kept, relative to the same root."""
    return f"{SIDECAR_DIR}/{path}.json"


def sidecar_bytes(groups: Sequence[str] | None) -> bytes:
    """An upload's sidecar: its groups, or ``null`` (the source's rules decide)."""
    value = None if groups is None else list(normalise_groups(groups))
    return json.dumps({"groups": value}).encode()


def parse_sidecar(data: bytes) -> tuple[str, ...] | None:
    """``ValueError`` for a sidecar that is not ours: the document then fails, visibly."""
    try:
        body = json.loads(data)
    except ValueError as exc:
        raise ValueError(f"audience sidecar is not JSON: {exc}") from exc
    if not isinstance(body, dict) or "groups" not in body:
        raise ValueError('audience sidecar must be {"groups": [...] | null}')
    groups = body["groups"]
    return None if groups is None else normalise_groups(groups)


@dataclass(frozen=True)
class AudienceRules:
    """A source's default audience and its ordered path rules (glob -> groups)."""

    default: tuple[str, ...] = DEFAULT_GROUPS
    rules: tuple[tuple[str, tuple[str, ...]], ...] = field(default_factory=tuple)

    @classmethod
    def build(
        cls, default: Sequence[str] | None, rules: Sequence[tuple[str, Sequence[str]]] = ()
    ) -> AudienceRules:
        return cls(
            normalise_groups(default) if default is not None else DEFAULT_GROUPS,
            tuple((glob, normalise_groups(groups)) for glob, groups in rules),
        )

    def groups_for(self, path: str, own: tuple[str, ...] | None = None) -> tuple[str, ...]:
        """The audience of the document at ``path`` whose record says ``own`` (None: nothing)."""
        if own is not None:
            return own
        for glob, groups in self.rules:
            if matches(path, (glob,)):
                return groups
        return self.default


def _names(value: Any) -> list[str]:
    """Group names from a record field: a string (comma-separated), a list of strings, or
    Workday references (``{"id": ..., "descriptor": ...}``: the descriptor names the group)."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [part for part in value.split(",") if part.strip()]
    if isinstance(value, Mapping):
        name = value.get("descriptor") or value.get("name") or value.get("id")
        if not isinstance(name, str):
            raise ValueError(f"cannot read a group name from {dict(value)!r}")
        return [name]
    if isinstance(value, list | tuple):
        return [n for item in value for n in _names(item)]
    raise ValueError(f"cannot read group names from a {type(value).__name__}")


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        return value.strip().lower() in _TRUE
    if isinstance(value, Mapping):  # a Workday reference such as {"descriptor": "Yes"}
        return _flag(value.get("descriptor") or value.get("id"))
    return False


@dataclass(frozen=True)
class RecordAudience:
    """How an HR-API record says who may see it (all optional; nothing set: the rules decide)."""

    field: str | None = None
    confidential_field: str | None = None
    confidential_audience: tuple[str, ...] | None = None

    def content(self, record: Any) -> Any:
        """The record without its audience fields: who may see a record is not what it says,
        and an audience change must not look like new content (it would be re-embedded)."""
        names = {self.field, self.confidential_field} - {None}
        if not names or not isinstance(record, Mapping):
            return record
        return {k: v for k, v in record.items() if k not in names}

    def groups(self, record: Any) -> tuple[str, ...] | None:
        """The record's audience, or None; ``ValueError`` for a value that names no valid
        group (the record then fails instead of being indexed for the wrong audience)."""
        if not isinstance(record, Mapping):
            return None
        if self.confidential_field and _flag(record.get(self.confidential_field)):
            assert self.confidential_audience is not None  # the configuration requires it
            return self.confidential_audience
        if self.field and record.get(self.field) not in (None, "", []):
            return normalise_groups(_names(record.get(self.field)))
        return None
