"""S3 landing-zone source and Secrets Manager references against a real moto server."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from datatorag.connectors.s3 import S3Settings, S3Source
from datatorag.connectors.secrets import SecretError, SecretResolver
from tests.fakes.connector_env import ConnectorEnv

pytestmark = [pytest.mark.aws, pytest.mark.timeout(90)]


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[ConnectorEnv]:
    e = ConnectorEnv.create(tmp_path)
    yield e
    await e.close()


@pytest.fixture
async def aws(moto_server) -> AsyncIterator:  # type: ignore[no-untyped-def]
    clients = moto_server.clients()
    yield clients
    await clients.close()


async def test_landing_zone_incremental(env: ConnectorEnv, aws) -> None:  # type: ignore[no-untyped-def]
    s3 = await aws.client("s3")
    bucket = f"landing-{uuid.uuid4().hex[:10]}"
    await s3.create_bucket(Bucket=bucket)

    async def put(key: str, body: bytes) -> None:
        await s3.put_object(Bucket=bucket, Key=key, Body=body)

    await put("incoming/acme/policies/leave.pdf", b"%PDF-1.4 leave")
    await put("incoming/acme/handbook.docx", b"PK docx bytes")
    await put("incoming/acme/folder/", b"")  # a folder marker, not a document
    await put("incoming/globex/other.pdf", b"another tenant")
    src = S3Source(
        "landing", "acme", S3Settings(bucket=bucket, prefix="incoming/acme/"), clients=aws
    )

    run = await env.sync(src)
    assert run.status == "ok", run.error
    msgs = await env.drain()
    assert sorted(m.path for m in msgs) == ["handbook.docx", "policies/leave.pdf"]
    pdf = next(m for m in msgs if m.path == "policies/leave.pdf")
    assert pdf.content_type == "application/pdf"
    assert await env.blobstore.get(pdf.blob_key) == b"%PDF-1.4 leave"

    await put("incoming/acme/policies/leave.pdf", b"%PDF-1.4 leave v2")
    await s3.delete_object(Bucket=bucket, Key="incoming/acme/handbook.docx")
    await put("incoming/acme/new.txt", b"new")
    gets = src.stats["GetObject"]
    run = await env.sync(src)
    assert await env.flow() == [
        ("deleted", "handbook.docx"),
        ("fetched", "new.txt"),
        ("fetched", "policies/leave.pdf"),
    ]
    assert src.stats["GetObject"] == gets + 2

    gets = src.stats["GetObject"]
    run = await env.sync(src)
    assert run.counts["unchanged"] == 2 and src.stats["GetObject"] == gets  # ETags: no download
    assert await env.flow() == []


async def test_missing_bucket_fails_the_run(env: ConnectorEnv, aws) -> None:  # type: ignore[no-untyped-def]
    src = S3Source("landing", "acme", S3Settings(bucket="no-such-bucket-x1"), clients=aws)
    run = await env.sync(src)
    assert run.status == "failed" and (run.error or "").startswith("not_found")


async def test_secrets_manager_references(aws) -> None:  # type: ignore[no-untyped-def]
    sm = await aws.client("secretsmanager")
    name = f"datatorag/acme/ftp-{uuid.uuid4().hex[:8]}"
    await sm.create_secret(Name=name, SecretString=json.dumps({"password": "pw-from-sm"}))
    plain = f"{name}-plain"
    await sm.create_secret(Name=plain, SecretString="plain-value")
    resolver = SecretResolver(aws_clients=aws)
    assert (
        await resolver.resolve(f"secretsmanager:{name}#password")
    ).get_secret_value() == "pw-from-sm"
    assert (await resolver.resolve(f"secretsmanager:{plain}")).get_secret_value() == "plain-value"
    with pytest.raises(SecretError, match="ResourceNotFoundException"):
        await resolver.resolve("secretsmanager:does/not/exist")
    with pytest.raises(SecretError, match="'user' field"):
        await resolver.resolve(f"secretsmanager:{name}#user")
