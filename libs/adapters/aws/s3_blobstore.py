"""``BlobStore`` on Amazon S3 via aiobotocore.

* Keys are used as given (``libs.keys`` builds them); one bucket per deployment.
* Every write carries the configured ``ServerSideEncryption`` (``AES256``, or ``aws:kms`` with the
  key id), so objects are encrypted even in a bucket without default encryption.
* User metadata (``x-amz-meta-*``) round-trips as given (the connector puts the content's
  SHA-256 there); botocore adds a CRC32 checksum to every upload, which S3 verifies.
* ``put_stream`` keeps at most one part in memory: up to ``part_size`` (8 MiB) it is one
  ``PutObject``, beyond it a multipart upload of ``part_size`` parts, aborted on any failure.
* ``open`` streams the body in ``chunk_size`` pieces; ``list`` pages through ``ListObjectsV2``
  (keys come back in UTF-8 binary order, which is lexicographic).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from typing import Any

from libs.adapters.aws.provision import sse_arguments
from libs.adapters.aws.session import (
    AwsClients,
    AwsConnection,
    aws_errors,
    dependency_check,
    is_not_found,
)
from libs.config import AwsSettings, Settings
from libs.errors import DependencyError, NotFound
from libs.ports.blobstore import BlobInfo, BlobStore

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


class S3BlobStore(BlobStore):
    def __init__(
        self,
        bucket: str,
        *,
        clients: AwsClients | AwsConnection | None = None,
        sse: str | None = "AES256",
        kms_key_id: str | None = None,
        part_size: int = PART_SIZE,
    ) -> None:
        if not bucket:
            raise ValueError("S3 bucket name must not be empty")
        if part_size < 5 * 1024 * 1024:
            raise ValueError("part_size must be at least 5 MiB (S3 minimum part size)")
        self.bucket = bucket
        self.part_size = part_size
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
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        s3 = await self._s3()
        try:
            async for piece in stream:
                buf += piece
                total += len(piece)
                while len(buf) >= self.part_size:
                    if upload_id is None:
                        async with aws_errors(self._what):
                            created = await s3.create_multipart_upload(
                                **self._put_args(key, meta, content_type)
                            )
                        upload_id = created["UploadId"]
                    part, buf = bytes(buf[: self.part_size]), buf[self.part_size :]
                    parts.append(await self._upload_part(s3, key, upload_id, len(parts) + 1, part))
            if upload_id is None:
                async with aws_errors(self._what):
                    await s3.put_object(Body=bytes(buf), **self._put_args(key, meta, content_type))
                return total
            if buf:
                parts.append(
                    await self._upload_part(s3, key, upload_id, len(parts) + 1, bytes(buf))
                )
            async with aws_errors(self._what):
                await s3.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                )
            return total
        except BaseException:
            if upload_id is not None:
                # best effort: the bucket's lifecycle rule reaps what is left otherwise
                with contextlib.suppress(Exception):
                    await s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            raise

    async def _upload_part(
        self, s3: Any, key: str, upload_id: str, number: int, data: bytes
    ) -> dict[str, Any]:
        if number > MAX_PARTS:
            raise ValueError(f"object {key!r} exceeds {MAX_PARTS} parts of {self.part_size} bytes")
        async with aws_errors(self._what):
            resp = await s3.upload_part(
                Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data
            )
        return {"PartNumber": number, "ETag": resp["ETag"]}

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

    async def open(self, key: str, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:  # type: ignore[override]
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

    async def list(self, prefix: str = "") -> AsyncIterator[str]:  # type: ignore[override]
        s3 = await self._s3()
        paginator = s3.get_paginator("list_objects_v2")
        async with aws_errors(self._what):
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents") or []:
                    yield item["Key"]

    async def check(self) -> None:
        async with dependency_check(self._what):
            s3 = await self._s3()
            await s3.head_bucket(Bucket=self.bucket)

    async def close(self) -> None:
        if self._owns_clients:
            await self._clients.close()
