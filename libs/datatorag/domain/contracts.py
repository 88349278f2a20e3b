"""Versioned message contracts between services.

Messages carry keys, never payloads (SQS caps a message at 256 KiB): the raw document, its chunks
and their vectors live in the blob store. Every message carries ``correlation_id`` so one
document's journey can be followed across queue hops in the logs.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, TypeAdapter

from datatorag.domain.audience import DEFAULT_GROUPS, Groups
from datatorag.domain.models import utcnow

SCHEMA_VERSION = 1


class _Message(BaseModel):
    schema_version: int = SCHEMA_VERSION
    correlation_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    tenant: str
    doc_id: str
    sent_at: datetime = Field(default_factory=utcnow)

    def to_json(self) -> str:
        return self.model_dump_json()


class DocumentFetched(_Message):
    """connector -> parser: a new or changed document version is in the blob store."""

    type: Literal["document.fetched"] = "document.fetched"
    version: str
    seq: int
    source: str
    path: str
    blob_key: str
    content_hash: str
    size: int
    content_type: str | None = None
    title: str | None = None
    # the version's audience when fetched; the registry's record is authoritative (an audience
    # can change while the version is on its way: see DocumentAudience)
    groups: Groups = DEFAULT_GROUPS


class DocumentDeleted(_Message):
    """connector -> indexer (tombstone): the document vanished from its source."""

    type: Literal["document.deleted"] = "document.deleted"
    source: str
    path: str


class DocumentAudience(_Message):
    """connector -> (parser, passed through) -> indexer: the document's audience changed at its
    source while its content did not. The registry already holds the new ``groups`` on every
    version; the indexer rewrites the groups of the chunks in the index from the registry (the
    latest change wins however messages are reordered), without re-embedding anything."""

    type: Literal["document.audience"] = "document.audience"
    source: str
    path: str
    groups: Groups = DEFAULT_GROUPS


class ChunksReady(_Message):
    """parser -> embedder: chunks of one version are in the blob store (``chunks_key``)."""

    type: Literal["chunks.ready"] = "chunks.ready"
    version: str
    chunks_key: str
    chunk_count: int
    groups: Groups = DEFAULT_GROUPS  # as fetched; the indexer takes the registry's


class ChunksEmbedded(_Message):
    """embedder -> indexer: chunk records with vectors are in the blob store."""

    type: Literal["chunks.embedded"] = "chunks.embedded"
    version: str
    records_key: str
    chunk_count: int
    model_id: str
    dim: int


Message = Annotated[
    DocumentFetched | DocumentDeleted | DocumentAudience | ChunksReady | ChunksEmbedded,
    Field(discriminator="type"),
]
_adapter: TypeAdapter[Message] = TypeAdapter(Message)


def parse_message(body: str | bytes) -> Message:
    """Parse any pipeline message; raises ``pydantic.ValidationError`` on a malformed body."""
    return _adapter.validate_json(body)
