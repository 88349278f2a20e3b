"""Adapters chosen by configuration alone: ``DATATORAG_MODE`` picks embedded or production.

Production adapters are imported lazily so the embedded default never needs AWS libraries to
be configured, and vice versa.
"""

from __future__ import annotations

from pathlib import Path

from datatorag.config import Mode, Settings
from datatorag.ports import (
    BlobStore,
    Embedder,
    EmbeddingCache,
    IndexAdmin,
    Queue,
    Registry,
    VectorIndex,
)


def _embedded_dir(settings: Settings, *parts: str) -> Path:
    path = settings.data_dir.joinpath(*parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def queue_name(settings: Settings, logical: str) -> str:
    name: str = getattr(settings.queues, logical)
    return name


def make_queue(settings: Settings, logical: str) -> Queue:
    """``logical`` is one of parse, embed, index."""
    q = settings.queues
    name = queue_name(settings, logical)
    if settings.mode is Mode.EMBEDDED:
        from datatorag.adapters.embedded.sqlite_queue import SqliteQueue

        return SqliteQueue(
            _embedded_dir(settings, "queue.sqlite3"),
            name,
            visibility_timeout_s=q.visibility_timeout_s,
            max_receives=q.max_receives,
        )
    from datatorag.adapters.aws.sqs_queue import SqsQueue

    return SqsQueue.from_settings(settings, name)


def make_blobstore(settings: Settings) -> BlobStore:
    if settings.mode is Mode.EMBEDDED:
        from datatorag.adapters.embedded.local_blobstore import LocalBlobStore

        return LocalBlobStore(_embedded_dir(settings, "blobs", "x").parent)
    from datatorag.adapters.aws.s3_blobstore import S3BlobStore

    return S3BlobStore.from_settings(settings)


def make_registry(settings: Settings) -> Registry:
    if settings.mode is Mode.EMBEDDED:
        from datatorag.adapters.embedded.sqlite_registry import SqliteRegistry

        return SqliteRegistry(_embedded_dir(settings, "registry.sqlite3"))
    from datatorag.adapters.aws.dynamodb_registry import DynamoDbRegistry

    return DynamoDbRegistry.from_settings(settings)


def make_embedding_cache(settings: Settings) -> EmbeddingCache:
    if settings.mode is Mode.EMBEDDED:
        from datatorag.adapters.embedded.sqlite_embedding_cache import SqliteEmbeddingCache

        return SqliteEmbeddingCache(_embedded_dir(settings, "embedding_cache.sqlite3"))
    from datatorag.adapters.aws.dynamodb_embedding_cache import DynamoDbEmbeddingCache

    return DynamoDbEmbeddingCache.from_settings(settings)


def make_vector_index(settings: Settings, *, model_id: str, dim: int) -> VectorIndex:
    """The index dimension follows the model; the index name carries model id and dimension."""
    if settings.mode is Mode.EMBEDDED:
        from datatorag.adapters.embedded.lancedb_index import (
            LanceDbIndex,
            logical_table,
            resolve_table,
        )

        path = _embedded_dir(settings, "lancedb", "x").parent
        return LanceDbIndex(path, dim=dim, table=resolve_table(path, logical_table(model_id, dim)))
    from datatorag.adapters.opensearch.index import OpenSearchIndex

    return OpenSearchIndex.from_settings(settings, model_id=model_id, dim=dim)


def make_index_admin(settings: Settings) -> IndexAdmin:
    """Blue/green builds of the vector index (reindex, rebuild-index)."""
    if settings.mode is Mode.EMBEDDED:
        from datatorag.adapters.embedded.lancedb_index import LanceDbIndexAdmin

        return LanceDbIndexAdmin(_embedded_dir(settings, "lancedb", "x").parent)
    from datatorag.adapters.opensearch.index import OpenSearchIndexAdmin

    return OpenSearchIndexAdmin(settings.opensearch)


async def make_embedder(settings: Settings, *, in_process: bool | None = None) -> Embedder:
    """Embedded mode (or the embedder service itself): the model in this process.
    Production consumers (gateway): the embedder service over HTTP."""
    if in_process is None:
        in_process = settings.mode is Mode.EMBEDDED
    if in_process:
        from datatorag.embedding.local import LocalEmbedder

        return LocalEmbedder(settings.embedding)
    from datatorag.embedding.http import HttpEmbedder

    token = settings.service_token.get_secret_value() if settings.service_token else None
    return await HttpEmbedder(settings.embedding.service_url, service_token=token).connect(
        settings.embedding.connect_wait_s
    )
