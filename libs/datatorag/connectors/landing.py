"""The landing zone behind ``POST /v1/documents``: validate an upload and write it where a source
picks it up (an S3 bucket/prefix watched by ``S3Source``, or a folder watched by ``FolderSource``).

The gateway streams the request body in; this module enforces the size limit while streaming,
sniffs the real content type from the first bytes (the declared one is only a hint: a ``.pdf``
that is not a PDF is refused), and stores the file under
``{prefix}{tenant}/{YYYY}/{MM}/{DD}/{uuid}-{safe name}``. The sync that follows assigns the document
id and does the rest, so an upload is indexed exactly like a file dropped on the FTP server.

Errors are ``PermanentError`` with a code the gateway maps to a status: ``too_large`` (413),
``empty_file`` (400), ``unsupported_type`` (415), ``bad_filename`` (400).
"""

from __future__ import annotations

import abc
import asyncio
import hashlib
import os
import re
import tempfile
import unicodedata
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING

from datatorag.domain.errors import PermanentError

if TYPE_CHECKING:  # imported where used: aiobotocore loads only for the AWS sources
    from datatorag.adapters.aws.session import AwsClients

_SNIFF_BYTES = 4096
_UNSAFE = re.compile(r"[^\w.\- ()+,=@]+", re.UNICODE)

# What the parser understands, by extension, for formats that cannot be told apart by magic bytes.
TEXT_TYPES = {
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".txt": "text/plain",
    ".csv": "text/csv",
    ".tsv": "text/tab-separated-values",
    ".eml": "message/rfc822",
    ".json": "application/json",
    ".html": "text/html",
    ".htm": "text/html",
}
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
# scans the parser reads by OCR
IMAGES = {
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"\xff\xd8\xff": "image/jpeg",
    b"II*\x00": "image/tiff",
    b"MM\x00*": "image/tiff",
}
ALLOWED = frozenset({"application/pdf", DOCX, XLSX, PPTX, *IMAGES.values(), *TEXT_TYPES.values()})


def safe_filename(name: str | None) -> str:
    """The base name, NFC-normalised, without path parts, controls or shell-hostile characters."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = unicodedata.normalize("NFC", base)
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C")
    base = _UNSAFE.sub("_", base).strip(" ._")
    if not base:
        raise PermanentError("the upload has no usable file name", code="bad_filename")
    stem, dot, ext = base.rpartition(".")
    if dot and len(ext) <= 10:
        return stem[: 119 - len(ext)] + "." + ext
    return base[:120]


def sniff_content_type(head: bytes, filename: str) -> str | None:
    """The content type the bytes prove, or ``None`` when it is none we accept."""
    ext = os.path.splitext(filename)[1].lower()
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    for magic, image_type in IMAGES.items():
        if head.startswith(magic):
            return image_type
    if head.startswith(b"PK\x03\x04"):
        # Office files are ZIPs whose entry names (in the first local headers) say which one;
        # other ZIPs (archives, jars) are refused
        office = b"[Content_Types].xml" in head
        for folder, kind, exts in ((b"word/", DOCX, (".docx",)), (b"xl/", XLSX, (".xlsx", ".xlsm")),
                                   (b"ppt/", PPTX, (".pptx",))):  # fmt: skip
            if folder in head or (office and ext in exts):
                return kind
        return None
    if b"\x00" in head:
        return None  # binary we do not know
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the sniff boundary
            return None
        text = head[: exc.start].decode("utf-8")
    stripped = text.lstrip("\ufeff \t\r\n").lower()
    if stripped.startswith(("<!doctype html", "<html")):
        return "text/html"
    if ext in TEXT_TYPES:
        return TEXT_TYPES[ext]
    if stripped.startswith(("{", "[")):
        return "application/json"
    return "text/plain"


@dataclass(frozen=True)
class Upload:
    key: str  # where it landed (object key or path relative to the landing root)
    filename: str
    size: int
    sha256: str
    content_type: str


class LandingZone(abc.ABC):
    def __init__(self, *, max_bytes: int, prefix: str = "") -> None:
        if max_bytes < 1:
            raise ValueError("max_bytes must be >= 1")
        self.max_bytes = max_bytes
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

    def key_for(self, tenant: str, filename: str, now: datetime | None = None) -> str:
        now = now or datetime.now(UTC)
        return f"{self.prefix}{tenant}/{now:%Y/%m/%d}/{uuid.uuid4().hex[:12]}-{filename}"

    async def receive(
        self, tenant: str, filename: str | None, stream: AsyncIterator[bytes]
    ) -> Upload:
        """Validate and store one upload; returns where it landed."""
        name = safe_filename(filename)
        spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=8 << 20)  # noqa: SIM115
        with spool:
            digest = hashlib.sha256()
            size = 0
            head = b""
            async for chunk in stream:
                size += len(chunk)
                if size > self.max_bytes:
                    raise PermanentError(
                        f"upload exceeds the limit of {self.max_bytes} bytes", code="too_large"
                    )
                if len(head) < _SNIFF_BYTES:
                    head += chunk[: _SNIFF_BYTES - len(head)]
                digest.update(chunk)
                spool.write(chunk)
            if size == 0:
                raise PermanentError("the upload is empty", code="empty_file")
            content_type = sniff_content_type(head, name)
            if content_type not in ALLOWED:
                raise PermanentError(
                    f"{name}: not a PDF, DOCX, XLSX, PPTX, CSV, EML, HTML, Markdown, text, "
                    "JSON document or a PNG/JPEG/TIFF scan",
                    code="unsupported_type",
                )
            spool.seek(0)
            key = self.key_for(tenant, name)
            await self._write(key, spool, size, content_type, digest.hexdigest())
        return Upload(key, name, size, digest.hexdigest(), content_type)

    @abc.abstractmethod
    async def _write(
        self, key: str, data: IO[bytes], size: int, content_type: str, sha256: str
    ) -> None: ...


class FolderLanding(LandingZone):
    """Embedded mode: files under a directory that a ``FolderSource`` watches. Written to a hidden
    temporary name and renamed, so the folder source never lists half a file."""

    def __init__(self, root: str | Path, *, max_bytes: int, prefix: str = "") -> None:
        super().__init__(max_bytes=max_bytes, prefix=prefix)
        self.root = Path(root)

    async def _write(
        self, key: str, data: IO[bytes], size: int, content_type: str, sha256: str
    ) -> None:
        def write() -> None:
            final = self.root / key
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = final.parent / f".{final.name}.part"
            with open(tmp, "wb") as fh:
                while block := data.read(1 << 20):
                    fh.write(block)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)

        await asyncio.to_thread(write)


class S3Landing(LandingZone):
    """Production: objects in the landing bucket an ``S3Source`` lists."""

    def __init__(
        self, clients: AwsClients, bucket: str, *, max_bytes: int, prefix: str = ""
    ) -> None:
        super().__init__(max_bytes=max_bytes, prefix=prefix)
        self.clients = clients
        self.bucket = bucket

    async def _write(
        self, key: str, data: IO[bytes], size: int, content_type: str, sha256: str
    ) -> None:
        s3 = await self.clients.client("s3")
        body = await asyncio.to_thread(data.read)
        await s3.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=body,
            ContentType=content_type,
            ContentLength=size,
            Metadata={"sha256": sha256},
        )
