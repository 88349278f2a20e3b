"""The registry, blob store, vector indexes and embedding cache of one install, embedded
(SQLite, local directory, LanceDB) or production (DynamoDB and S3 on the session's moto server,
the real OpenSearch node), for the document-lifecycle tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from datatorag.config import OpenSearchSettings
from datatorag.ports import BlobStore, EmbeddingCache, IndexAdmin, Registry
from tests.conformance import factories_aws, factories_embedded

KINDS = ["embedded", "production"]


@dataclass
class Stack:
    kind: str
    registry: Registry
    blobstore: BlobStore
    admin: IndexAdmin
    cache: EmbeddingCache

    async def close(self) -> None:
        for part in (self.registry, self.blobstore, self.admin, self.cache):
            await part.close()


async def make_stack(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Stack:
    if kind == "embedded":
        from datatorag.adapters.embedded.lancedb_index import LanceDbIndexAdmin

        return Stack(
            kind,
            await factories_embedded.make_registry(request, tmp_path),
            await factories_embedded.make_blobstore(request, tmp_path),
            LanceDbIndexAdmin(tmp_path / "lancedb"),
            await factories_embedded.make_embedding_cache(request, tmp_path),
        )
    from datatorag.adapters.opensearch import OpenSearchIndexAdmin

    server = request.getfixturevalue("opensearch_server")
    prefix = f"dtr-life-{uuid.uuid4().hex[:8]}"
    settings = OpenSearchSettings(url=server.url, engine=server.engine, index_prefix=prefix)
    request.addfinalizer(lambda: factories_opensearch_drop(server.url, prefix))
    return Stack(
        kind,
        await factories_aws.make_registry(request, tmp_path),
        await factories_aws.make_blobstore(request, tmp_path),
        OpenSearchIndexAdmin(settings, replicas=0),
        await factories_aws.make_embedding_cache(request, tmp_path),
    )


def opensearch_settings_of(stack: Stack) -> OpenSearchSettings:
    from datatorag.adapters.opensearch import OpenSearchIndexAdmin

    assert isinstance(stack.admin, OpenSearchIndexAdmin)
    return stack.admin.settings


def factories_opensearch_drop(url: str, prefix: str) -> None:
    from tests.conformance.factories_opensearch import _drop_prefix

    _drop_prefix(url, prefix)
