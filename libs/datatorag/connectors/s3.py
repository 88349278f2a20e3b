"""S3 landing-zone source: every object under ``s3://bucket/prefix`` is a document.

Listing is ``ListObjectsV2`` by prefix (paginated); the object's ETag is the change hint, so an
unchanged object is never downloaded. A download streams ``GetObject`` and, if the connection drops,
resumes with a ``Range`` request pinned to the listed ETag (``IfMatch``): an object replaced
meanwhile fails with a precise "changed while downloading" instead of a spliced file. Keys that
end in ``/`` (folder markers) are skipped.

The same bucket/prefix is where ``POST /v1/documents`` uploads land
(``datatorag.connectors.landing``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import SecretStr

from datatorag.connectors.audience import SIDECAR_DIR, parse_sidecar, sidecar_path
from datatorag.connectors.base import Source, SourceAuthError, SourceEntry, SourceUnavailable
from datatorag.connectors.downloads import resumable_download
from datatorag.connectors.paths import matches
from datatorag.connectors.retry import Backoff
from datatorag.domain.errors import PermanentError

if TYPE_CHECKING:  # imported where used: aiobotocore loads only for the AWS sources
    from datatorag.adapters.aws.session import AwsClients

_CHUNK = 1 << 20
_AUTH_CODES = frozenset(
    {
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "AllAccessDisabled",
    }
)


@dataclass
class S3Settings:
    bucket: str
    prefix: str = ""
    region: str | None = None
    endpoint_url: str | None = None
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    include: Sequence[str] = ("*",)
    exclude: Sequence[str] = ()
    backoff: Backoff = field(default_factory=Backoff)
    upload_audience: bool = False  # the landing zone's sidecars (the uploads source)


def _code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


class S3Source(Source):
    kind = "s3"

    def __init__(
        self,
        id: str,
        tenant: str,
        settings: S3Settings,
        *,
        max_concurrency: int = 8,
        clients: AwsClients | None = None,  # shared if given
    ) -> None:
        super().__init__(id, tenant, max_concurrency=max_concurrency)
        self.settings = settings
        self.prefix = settings.prefix.lstrip("/")
        self.stats: Counter[str] = Counter()
        self._clients = clients
        self._owns_clients = clients is None
        self._keys: dict[str, str] = {}  # listed path -> object key

    async def _s3(self) -> Any:
        if self._clients is None:
            from datatorag.adapters.aws.session import AwsClients, AwsConnection

            s = self.settings
            kwargs: dict[str, Any] = {}
            if s.region:
                kwargs["region"] = s.region
            if s.endpoint_url:
                kwargs["endpoint_url"] = s.endpoint_url
            if s.access_key_id and s.secret_access_key:
                kwargs["access_key_id"] = s.access_key_id.get_secret_value()
                kwargs["secret_access_key"] = s.secret_access_key.get_secret_value()
            self._clients = AwsClients(AwsConnection(**kwargs))
        return await self._clients.client("s3")

    def _source_error(self, exc: BaseException, doing: str) -> Exception:
        code = _code(exc)
        where = f"s3://{self.settings.bucket}/{self.prefix}"
        if code in _AUTH_CODES:
            return SourceAuthError(f"{doing} {where}: {code}")
        if code == "NoSuchBucket":
            return SourceUnavailable(
                f"{doing} {where}: the bucket does not exist", code="not_found"
            )
        return SourceUnavailable(
            f"{doing} {where}: {code or type(exc).__name__}: {exc}", code="unreachable"
        )

    async def list(self) -> AsyncIterator[SourceEntry]:
        try:
            s3 = await self._s3()
            paginator = s3.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket=self.settings.bucket, Prefix=self.prefix):
                self.stats["ListObjectsV2"] += 1
                for obj in page.get("Contents", ()):
                    key: str = obj["Key"]
                    if key.endswith("/"):
                        continue
                    rel = key[len(self.prefix) :].lstrip("/") if self.prefix else key
                    if not rel or not matches(rel, self.settings.include, self.settings.exclude):
                        continue
                    if self.settings.upload_audience and rel.startswith(f"{SIDECAR_DIR}/"):
                        continue  # an upload's audience, not a document
                    self._keys[rel] = key
                    yield SourceEntry(
                        path=rel,
                        size=int(obj["Size"]),
                        mtime=obj["LastModified"].timestamp(),
                        etag=str(obj.get("ETag", "")).strip('"') or None,
                    )
        except (ClientError, BotoCoreError, OSError) as exc:
            raise self._source_error(exc, "listing") from exc

    def _key(self, entry: SourceEntry) -> str:
        return self._keys.get(entry.path) or self.prefix + entry.path

    async def fetch(self, entry: SourceEntry) -> AsyncIterator[bytes]:
        download = resumable_download(
            partial(self._read_from, self._key(entry), entry),
            path=entry.path,
            backoff=self.settings.backoff,
            retry_on=(ClientError, TimeoutError, BotoCoreError, OSError),
            stats=self.stats,
        )
        async with aclosing(download) as chunks:
            async for chunk in chunks:
                yield chunk

    async def _read_from(
        self, key: str, entry: SourceEntry, offset: int
    ) -> AsyncGenerator[bytes, None]:
        """``GetObject`` of ``key`` from ``offset`` on (``Range``), pinned to the listed ETag."""
        args: dict[str, str] = {"Bucket": self.settings.bucket, "Key": key}
        if entry.etag:
            args["IfMatch"] = f'"{entry.etag}"'
        if offset:
            args["Range"] = f"bytes={offset}-"
        try:
            s3 = await self._s3()
            self.stats["GetObject"] += 1
            resp = await s3.get_object(**args)
            async with resp["Body"] as body:
                while chunk := await body.read(_CHUNK):
                    yield chunk
        except ClientError as exc:
            code = _code(exc)
            if code in ("NoSuchKey", "404"):
                raise PermanentError(
                    f"{entry.path} vanished before download", code="vanished"
                ) from exc
            if code in ("PreconditionFailed", "412"):
                raise PermanentError(
                    f"{entry.path} was replaced while downloading", code="changed_during_fetch"
                ) from exc
            if code in _AUTH_CODES:
                raise self._source_error(exc, "reading") from exc
            raise

    async def sidecar_audience(self, entry: SourceEntry) -> tuple[str, ...] | None:
        if not self.settings.upload_audience:
            return None
        key = self.prefix + sidecar_path(entry.path)
        try:
            s3 = await self._s3()
            self.stats["GetObject"] += 1
            resp = await s3.get_object(Bucket=self.settings.bucket, Key=key)
            async with resp["Body"] as body:
                data = await body.read()
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return None  # not an upload: the rules decide
            raise self._source_error(exc, "reading the audience of") from exc
        return parse_sidecar(data)

    async def stat(self, entry: SourceEntry) -> SourceEntry | None:
        try:
            s3 = await self._s3()
            head = await s3.head_object(Bucket=self.settings.bucket, Key=self._key(entry))
        except (ClientError, BotoCoreError, OSError):
            return None
        return SourceEntry(
            path=entry.path,
            size=int(head["ContentLength"]),
            mtime=head["LastModified"].timestamp(),
            etag=str(head.get("ETag", "")).strip('"') or None,
        )

    async def close(self) -> None:
        if self._clients is not None and self._owns_clients:
            await self._clients.close()
            self._clients = None
