"""Factories for the AWS adapters (SQS, S3, DynamoDB) against the session's real moto server.

Each call provisions uniquely named resources (with the same code ``datatorag init`` runs), so
tests never share state. Provisioning runs in the fixture's event loop with its own clients; the
adapter makes its clients lazily in whatever loop the test runs.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from datatorag.adapters.aws.dynamodb_embedding_cache import DynamoDbEmbeddingCache
from datatorag.adapters.aws.dynamodb_registry import DynamoDbRegistry
from datatorag.adapters.aws.provision import ensure_bucket, ensure_queue, ensure_table
from datatorag.adapters.aws.s3_blobstore import S3BlobStore
from datatorag.adapters.aws.session import AwsClients, AwsConnection
from datatorag.adapters.aws.sqs_queue import SqsQueue
from datatorag.ports import BlobStore, EmbeddingCache, Queue, Registry

# Small enough for fast tests, the same as the embedded queue's factory.
VISIBILITY_TIMEOUT_S = 2
MAX_RECEIVES = 3


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def _connection(request: pytest.FixtureRequest) -> AwsConnection:
    return request.getfixturevalue("moto_server").connection()


def _clients(request: pytest.FixtureRequest) -> AwsClients:
    return AwsClients(_connection(request))


async def make_queue(request: pytest.FixtureRequest, tmp_path: Path) -> Queue:
    name = _unique("q")
    setup = _clients(request)
    try:
        await ensure_queue(
            setup,
            name,
            dlq_suffix="-dlq",
            visibility_timeout_s=VISIBILITY_TIMEOUT_S,
            max_receives=MAX_RECEIVES,
            wait_time_s=0,
        )
    finally:
        await setup.close()
    return SqsQueue(
        name,
        clients=_connection(request),
        dlq_suffix="-dlq",
        visibility_timeout_s=VISIBILITY_TIMEOUT_S,
        max_receives=MAX_RECEIVES,
        wait_time_s=0,
    )


async def make_blobstore(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    bucket = _unique("bucket")
    setup = _clients(request)
    try:
        await ensure_bucket(setup, bucket, sse="AES256")
    finally:
        await setup.close()
    return S3BlobStore(bucket, clients=_connection(request), sse="AES256")


async def make_registry(request: pytest.FixtureRequest, tmp_path: Path) -> Registry:
    table = _unique("registry")
    setup = _clients(request)
    try:
        await ensure_table(setup, table)
    finally:
        await setup.close()
    return DynamoDbRegistry(table, clients=_connection(request))


async def make_embedding_cache(request: pytest.FixtureRequest, tmp_path: Path) -> EmbeddingCache:
    table = _unique("registry")  # the cache lives in the registry's table
    setup = _clients(request)
    try:
        await ensure_table(setup, table)
    finally:
        await setup.close()
    return DynamoDbEmbeddingCache(table, clients=_connection(request))
