"""S3BlobStore against a real moto server: encryption headers, multipart streaming, pagination,
health checks and input validation."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from datatorag.adapters.aws.provision import ensure_bucket
from datatorag.adapters.aws.s3_blobstore import S3BlobStore
from datatorag.adapters.aws.session import AwsClients
from datatorag.domain.errors import DependencyError, NotFound

pytestmark = [pytest.mark.aws, pytest.mark.timeout(90)]

MIB = 1024 * 1024


@pytest.fixture
async def clients(moto_server) -> AsyncIterator[AwsClients]:
    clients = moto_server.clients()
    yield clients
    await clients.close()


async def _store(clients: AwsClients, **kw: Any) -> S3BlobStore:
    bucket = f"it-{uuid.uuid4().hex[:16]}"
    await ensure_bucket(clients, bucket, sse=None)  # no default encryption: headers must do it
    return S3BlobStore(bucket, clients=clients, **kw)


async def _calls(clients: AwsClients, operation: str) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    s3 = await clients.client("s3")
    s3.meta.events.register(
        f"provide-client-params.s3.{operation}", lambda params, **_: seen.append(dict(params))
    )
    return seen


async def _pieces(total: int, piece: int = MIB) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        n = min(piece, total - sent)
        yield os.urandom(n)
        sent += n


async def test_every_write_carries_the_aes256_header(clients: AwsClients) -> None:
    store = await _store(clients, sse="AES256")
    s3 = await clients.client("s3")
    await store.put("a/put", b"bytes")
    await store.put_stream("a/small-stream", _pieces(1000))
    await store.put_stream("a/multipart", _pieces(9 * MIB))
    for key in ("a/put", "a/small-stream", "a/multipart"):
        head = await s3.head_object(Bucket=store.bucket, Key=key)
        assert head["ServerSideEncryption"] == "AES256", key


async def test_kms_encryption_names_the_key(clients: AwsClients) -> None:
    kms = await clients.client("kms")
    key_id = (await kms.create_key(Description="datatorag test"))["KeyMetadata"]["KeyId"]
    store = await _store(clients, sse="aws:kms", kms_key_id=key_id)
    s3 = await clients.client("s3")
    await store.put("secret", b"payroll")
    head = await s3.head_object(Bucket=store.bucket, Key="secret")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert key_id in head["SSEKMSKeyId"]
    assert await store.get("secret") == b"payroll"


async def test_no_sse_header_when_disabled(clients: AwsClients) -> None:
    store = await _store(clients, sse="none")
    s3 = await clients.client("s3")
    await store.put("plain", b"x")
    head = await s3.head_object(Bucket=store.bucket, Key="plain")
    assert "ServerSideEncryption" not in head


async def test_a_20_mib_stream_goes_up_in_parts_and_streams_back(clients: AwsClients) -> None:
    store = await _store(clients)
    parts = await _calls(clients, "UploadPart")
    puts = await _calls(clients, "PutObject")
    size = 20 * MIB + 123
    digest = hashlib.sha256()

    async def source() -> AsyncIterator[bytes]:
        async for piece in _pieces(size, piece=300_000):  # pieces unaligned to parts
            digest.update(piece)
            yield piece

    meta = {"sha256": "pending", "tenant": "acme"}
    written = await store.put_stream("big/doc.pdf", source(), metadata=meta, content_type="x/y")

    assert written == size
    assert [p["PartNumber"] for p in parts] == [1, 2, 3]  # 8 + 8 + 4 MiB
    assert [len(p["Body"]) for p in parts] == [8 * MIB, 8 * MIB, size - 16 * MIB]
    assert puts == []
    s3 = await clients.client("s3")
    head = await s3.head_object(Bucket=store.bucket, Key="big/doc.pdf")
    assert head["ETag"].strip('"').endswith("-3")  # a multipart object
    info = await store.head("big/doc.pdf")
    assert (info.size, info.metadata, info.content_type) == (size, meta, "x/y")
    down = hashlib.sha256()
    pieces = 0
    async for piece in store.open("big/doc.pdf", chunk_size=MIB):
        assert len(piece) <= MIB
        down.update(piece)
        pieces += 1
    assert pieces >= 21
    assert down.hexdigest() == digest.hexdigest()


async def test_a_broken_stream_aborts_the_upload_and_keeps_the_old_object(
    clients: AwsClients,
) -> None:
    store = await _store(clients)
    await store.put("k", b"original")

    async def broken() -> AsyncIterator[bytes]:
        async for piece in _pieces(17 * MIB):  # two parts uploaded, then the source dies
            yield piece
        raise ConnectionError("ftp server went away")

    with pytest.raises(ConnectionError):
        await store.put_stream("k", broken())
    assert await store.get("k") == b"original"
    s3 = await clients.client("s3")
    uploads = await s3.list_multipart_uploads(Bucket=store.bucket)
    assert uploads.get("Uploads", []) == []


async def test_list_follows_pagination(clients: AwsClients) -> None:
    store = await _store(clients, list_page_size=2)
    pages = await _calls(clients, "ListObjectsV2")
    keys = [f"p/{c}" for c in "edcba"] + ["q/other"]
    for k in keys:
        await store.put(k, b"")
    assert [k async for k in store.list("p/")] == sorted(keys[:5])
    assert len(pages) == 3  # 2 + 2 + 1 keys


async def test_missing_bucket_is_a_dependency_error(clients: AwsClients) -> None:
    bucket = f"missing-{uuid.uuid4().hex[:12]}"
    store = S3BlobStore(bucket, clients=clients)
    with pytest.raises(DependencyError, match=bucket):
        await store.check()
    with pytest.raises(DependencyError, match=bucket):
        await store.get("any")


async def test_missing_key_is_not_found_with_its_address(clients: AwsClients) -> None:
    store = await _store(clients)
    with pytest.raises(NotFound, match=f"s3://{store.bucket}/no/such"):
        await store.get("no/such")


async def test_bad_input_is_refused_precisely(clients: AwsClients) -> None:
    store = await _store(clients)
    with pytest.raises(ValueError, match="metadata key 'Tenant'"):
        await store.put("k", b"x", metadata={"Tenant": "acme"})
    with pytest.raises(ValueError, match="printable ASCII"):
        await store.put("k", b"x", metadata={"title": "Übersicht"})
    with pytest.raises(ValueError, match=r"1..1024 bytes"):
        await store.put("", b"x")
    with pytest.raises(ValueError, match="DATATORAG_AWS_SSE"):
        S3BlobStore("b", sse="DES")
    with pytest.raises(ValueError, match="5 MiB"):
        S3BlobStore("b", part_size=MIB)
    assert not await store.exists("k")
