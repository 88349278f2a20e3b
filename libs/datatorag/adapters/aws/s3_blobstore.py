"""``BlobStore`` on Amazon S3 via aiobotocore.

* Keys are used as given (``datatorag.domain.keys`` builds them); one bucket per deployment.
* Every write carries the configured ``ServerSideEncryption`` (``AES256``, or ``aws:kms`` with the
  key id), so objects are encrypted even in a bucket without default encryption.
* User metadata (``x-amz-meta-*``) round-trips as given (the connector puts the content's
  SHA-256 there); botocore adds a CRC32 checksum to every upload, which S3 verifies.
* ``put_stream`` keeps at most two parts in memory: up to ``part_size`` (8 MiB) it is one
  ``PutObject``, beyond it a multipart upload of ``part_size`` parts (one uploading while the
  next is read), aborted on any failure so the old object stays.
* ``open`` streams the body in ``chunk_size`` pieces; ``list`` pages through ``ListObjectsV2``
  (keys come back in UTF-8 binary order, which is lexicographic).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

from datatorag.adapters.aws.provision import sse_arguments
from datatorag.adapters.aws.session import (
    AwsClients,
    AwsConnection,
    aws_errors,
    dependency_check,
    is_not_found,
)
from datatorag.config import AwsSettings, Settings
from datatorag.domain.errors import DependencyError, NotFound
from datatorag.ports.blobstore import PROBE_PREFIX, BlobInfo, BlobStore

PART_SIZE = 8 * 1024 * 1024  # S3 needs >= 5 MiB per part except the last
MAX_PARTS = 10_000
# S3 lower-cases metadata names and sends them as HTTP headers
_META_KEY = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
MAX_METADATA_BYTES = 2048  # S3's limit for all user metadata together


def _check_metadata(metadata: dict[str, str] | None) -> dict[str, str]:
    meta = dict(metadata or {})
    for k, v in meta.items():
        if not isinstance(k, str) or not _META_KEY.match(k):
            raise ValueError(f"metadata key {k!r} must be lower-case ASCII letters, digits, -_.")
        if not isinstance(v, str) or not v.isascii() or not v.isprintable():
            raise ValueError(f"metadata value for {k!r} must be printable ASCII, got {v!r}")
    if sum(len(k) + len(v) for k, v in meta.items()) > MAX_METADATA_BYTES:
        raise ValueError(f"metadata exceeds S3's {MAX_METADATA_BYTES} bytes")
    return meta


def _check_key(key: str) -> str:
    if not key or len(key.encode()) > 1024:
        raise ValueError(f"S3 key must be 1..1024 bytes, got {key!r}")
    return key


class _MultipartUpload:
    """One multipart upload: part N uploads while the caller reads part N+1 (two parts in
    memory at most). Parts carry a CRC32 that S3 checks, and ``complete`` lists them."""

    def __init__(self, store: S3BlobStore, s3: Any, key: str, upload_id: str) -> None:
        self.store, self.s3, self.key, self.upload_id = store, s3, key, upload_id
        self.parts: list[dict[str, Any]] = []
        self._pending: asyncio.Task[dict[str, Any]] | None = None

    @classmethod
    async def start(cls, store: S3BlobStore, s3: Any, args: dict[str, Any]) -> _MultipartUpload:
        async with aws_errors(store._what):
            created = await s3.create_multipart_upload(ChecksumAlgorithm="CRC32", **args)
        return cls(store, s3, args["Key"], created["UploadId"])

    async def _upload(self, number: int, data: bytes) -> dict[str, Any]:
        async with aws_errors(self.store._what):
            resp = await self.s3.upload_part(
                Bucket=self.store.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                PartNumber=number,
                Body=data,
                ChecksumAlgorithm="CRC32",
            )
        return {"PartNumber": number, "ETag": resp["ETag"], "ChecksumCRC32": resp["ChecksumCRC32"]}

    async def _settle(self) -> None:
        if self._pending is not None:
            task, self._pending = self._pending, None
            self.parts.append(await task)

    async def add(self, data: bytes) -> None:
        await self._settle()
        number = len(self.parts) + 1
        if number > MAX_PARTS:
            raise ValueError(
                f"object {self.key!r} exceeds {MAX_PARTS} parts of {self.store.part_size} bytes"
            )
        self._pending = asyncio.create_task(self._upload(number, data))

    async def complete(self) -> None:
        await self._settle()
        async with aws_errors(self.store._what):
            await self.s3.complete_multipart_upload(
                Bucket=self.store.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                MultipartUpload={"Parts": self.parts},
            )

    async def abort(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            with contextlib.suppress(BaseException):
                await self._pending
        # best effort: the bucket's lifecycle rule reaps what is left otherwise
        with contextlib.suppress(Exception):
            await self.s3.abort_multipart_upload(
                Bucket=self.store.bucket, Key=self.key, UploadId=self.upload_id
            )


class S3BlobStore(BlobStore):
    def __init__(
        self,
        bucket: str,
        *,
        clients: AwsClients | AwsConnection | None = None,
        sse: str | None = "AES256",
        kms_key_id: str | None = None,
        part_size: int = PART_SIZE,
        list_page_size: int = 1000,
    ) -> None:
        if not bucket:
            raise ValueError("S3 bucket name must not be empty")
        if part_size < 5 * 1024 * 1024:
            raise ValueError("part_size must be at least 5 MiB (S3 minimum part size)")
        self.bucket = bucket
        self.part_size = part_size
        self.list_page_size = list_page_size  # keys per ListObjectsV2 call (S3 caps it at 1000)
        self._sse = sse_arguments(sse, kms_key_id)
        # shared clients are the caller's to close; a connection (or none) makes our own
        self._owns_clients = not isinstance(clients, AwsClients)
        self._clients = clients if isinstance(clients, AwsClients) else AwsClients(clients)

    @classmethod
    def from_settings(
        cls, settings: Settings | AwsSettings, *, clients: AwsClients | None = None
    ) -> S3BlobStore:
        aws = settings.aws if isinstance(settings, Settings) else settings
        return cls(
            aws.bucket,
            clients=clients or AwsConnection.from_settings(aws),
            sse=aws.sse,
            kms_key_id=aws.kms_key_id,
        )

    @property
    def _what(self) -> str:
        return f"s3 bucket {self.bucket}"

    async def _s3(self) -> Any:
        return await self._clients.client("s3")

    def _put_args(
        self, key: str, metadata: dict[str, str], content_type: str | None
    ) -> dict[str, Any]:
        args: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "Metadata": metadata,
            **self._sse,
        }
        if content_type:
            args["ContentType"] = content_type
        return args

    def _missing(self, key: str, exc: BaseException) -> Exception:
        if "NoSuchBucket" in str(exc):
            return DependencyError(self._what, "does not exist")
        return NotFound(f"s3://{self.bucket}/{key}")

    async def put(
        self,
        key: str,
        data: bytes,
        *,
        metadata: dict[str, str] | None = None,
        content_type: str | None = None,
    ) -> None:
        meta = _check_metadata(metadata)
        s3 = await self._s3()
        async with aws_errors(self._what):
            await s3.put_object(Body=data, **self._put_args(_check_key(key), meta, content_type))

    async def put_stream(
        self,
        key: str,
        stream: AsyncIterator[bytes],
        *,
        metadata: dict[str, str] | None = None,
        content_type: str | None = None,
    ) -> int:
        meta = _check_metadata(metadata)
        _check_key(key)
        buf = bytearray()
        total = 0
        upload: _MultipartUpload | None = None
        s3 = await self._s3()
        try:
            async for piece in stream:
                buf += piece
                total += len(piece)
                while len(buf) >= self.part_size:
                    if upload is None:
                        upload = await _MultipartUpload.start(
                            self, s3, self._put_args(key, meta, content_type)
                        )
                    part, buf = bytes(buf[: self.part_size]), buf[self.part_size :]
                    await upload.add(part)
            if upload is None:  # small enough for one request
                async with aws_errors(self._what):
                    await s3.put_object(Body=bytes(buf), **self._put_args(key, meta, content_type))
                return total
            if buf:
                await upload.add(bytes(buf))
            await upload.complete()
            return total
        except BaseException:
            if upload is not None:
                await upload.abort()
            raise

    async def get(self, key: str) -> bytes:
        s3 = await self._s3()
        try:
            async with aws_errors(self._what):
                resp = await s3.get_object(Bucket=self.bucket, Key=key)
                async with resp["Body"] as body:
                    return bytes(await body.read())
        except Exception as exc:
            if is_not_found(exc):
                raise self._missing(key, exc) from exc
            raise

    async def open(self, key: str, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        s3 = await self._s3()
        try:
            async with aws_errors(self._what):
                resp = await s3.get_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            if is_not_found(exc):
                raise self._missing(key, exc) from exc
            raise
        async with resp["Body"] as body:
            async for piece in body.iter_chunks(chunk_size):
                yield piece

    async def head(self, key: str) -> BlobInfo:
        s3 = await self._s3()
        try:
            async with aws_errors(self._what):
                resp = await s3.head_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            if is_not_found(exc):
                raise self._missing(key, exc) from exc
            raise
        return BlobInfo(
            key=key,
            size=int(resp["ContentLength"]),
            metadata=dict(resp.get("Metadata") or {}),
            content_type=resp.get("ContentType"),
        )

    async def exists(self, key: str) -> bool:
        try:
            await self.head(key)
        except NotFound:
            return False
        return True

    async def delete(self, key: str) -> None:
        s3 = await self._s3()
        async with aws_errors(self._what):
            await s3.delete_object(Bucket=self.bucket, Key=key)

    async def list(self, prefix: str = "") -> AsyncIterator[str]:
        s3 = await self._s3()
        paginator = s3.get_paginator("list_objects_v2")
        async with aws_errors(self._what):
            async for page in paginator.paginate(
                Bucket=self.bucket,
                Prefix=prefix,
                PaginationConfig={"PageSize": self.list_page_size},
            ):
                for item in page.get("Contents") or []:
                    yield item["Key"]

    async def check(self) -> None:
        """The bucket is there and takes a write (with our encryption headers) and a delete: a
        missing permission or KMS key fails here, not at the next document."""
        async with dependency_check(self._what):
            s3 = await self._s3()
            await s3.head_bucket(Bucket=self.bucket)
            key = f"{PROBE_PREFIX}{uuid.uuid4().hex}"
            await s3.put_object(Body=b"readiness probe", **self._put_args(key, {}, None))
            await s3.delete_object(Bucket=self.bucket, Key=key)

    async def close(self) -> None:
        if self._owns_clients:
            await self._clients.close()
