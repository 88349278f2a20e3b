"""The landing zone behind ``POST /v1/documents``: validate an upload and write it where a source
picks it up (an S3 bucket/prefix watched by ``S3Source``, or a folder watched by ``FolderSource``).

The gateway streams the request body in; this module enforces the size limit while streaming,
sniffs the real content type from the bytes and holds it against the name (the declared type is
only a hint: a ``.pdf`` that is a ZIP, an HTML page or plain text is refused, naming what it is),
and stores the file under ``{prefix}{tenant}/{safe name}``, after its audience (the upload's
``audience`` field, or ``null``: the uploads source's rules) in the sidecar
``{prefix}{tenant}/.audience/{safe name}.json`` that the uploads source reads
(``upload_audience``), so no sync ever sees the file without its audience. The sync that
follows assigns the document id from that path, so the same name uploaded again is a new
version of the same document (the old version leaves the index once the new one is in), exactly
like a file replaced on the FTP server.

Errors are ``PermanentError`` with a code the gateway maps to a status: ``too_large`` (413),
``empty_file`` (400), ``unsupported_type`` (415, an ``UnsupportedUpload`` naming the detected
type), ``bad_filename`` (400). A full disk (``ENOSPC``/``EDQUOT``, in the spool or the landing
folder) is ``InsufficientStorage`` (507), and leaves no partial file behind.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import errno
import hashlib
import io
import os
import re
import unicodedata
import uuid
import zipfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from tempfile import SpooledTemporaryFile
from typing import IO, TYPE_CHECKING

from datatorag.connectors.audience import sidecar_bytes, sidecar_path
from datatorag.domain.errors import InsufficientStorage, PermanentError

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
IMAGES = frozenset({"image/png", "image/jpeg", "image/tiff"})  # scans the parser reads by OCR
ALLOWED = frozenset({"application/pdf", DOCX, XLSX, PPTX, *IMAGES, *TEXT_TYPES.values()})


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


OCTET_STREAM = "application/octet-stream"
ZIP = "application/zip"
_MAGIC = {
    b"\xd0\xcf\x11\xe0": "application/x-ole-storage",  # legacy Office (.doc, .xls)
    b"\x89PNG": "image/png",
    b"\xff\xd8\xff": "image/jpeg",
    b"GIF8": "image/gif",
    b"II*\x00": "image/tiff",
    b"MM\x00*": "image/tiff",
    b"\x1f\x8b": "application/gzip",
    b"{\\rtf": "application/rtf",
    b"\x7fELF": "application/x-executable",
}
_LABELS = {
    "application/pdf": "a PDF",
    DOCX: "a DOCX document",
    XLSX: "an Excel workbook",
    PPTX: "a PowerPoint presentation",
    "application/vnd.oasis.opendocument": "an OpenDocument file",
    ZIP: "a ZIP archive",
    "text/html": "HTML",
    "application/json": "JSON",
    "text/plain": "plain text",
    "text/markdown": "Markdown",
    "text/csv": "CSV",
    OCTET_STREAM: "binary data of no supported format",
    "application/x-ole-storage": "a legacy Office file (.doc/.xls)",
    "image/png": "a PNG image",
    "image/jpeg": "a JPEG image",
    "image/gif": "a GIF image",
    "image/tiff": "a TIFF image",
    "application/gzip": "a gzip archive",
    "application/rtf": "an RTF document",
    "application/x-executable": "an executable",
}
# what a name's extension promises, and how to say it; a textual extension takes any text but HTML
_TEXT = frozenset({"text/plain", "application/json"})
_PROMISED: dict[str, tuple[frozenset[str], str]] = {
    ".pdf": (frozenset({"application/pdf"}), "a PDF"),
    ".docx": (frozenset({DOCX}), "a DOCX document"),
    # an HTML fragment (no <html> to sniff) is text; the HTML reader takes it as it is
    ".html": (frozenset({"text/html", "text/plain"}), "HTML"),
    ".htm": (frozenset({"text/html", "text/plain"}), "HTML"),
    ".json": (frozenset({"application/json"}), "JSON"),
    ".md": (_TEXT, "Markdown text"),
    ".markdown": (_TEXT, "Markdown text"),
    ".txt": (_TEXT, "plain text"),
    ".csv": (_TEXT, "CSV text"),
    ".tsv": (_TEXT, "TSV text"),
    ".eml": (_TEXT, "an e-mail message"),
    ".xlsx": (frozenset({XLSX}), "an Excel workbook"),
    ".xlsm": (frozenset({XLSX}), "an Excel workbook"),
    ".pptx": (frozenset({PPTX}), "a PowerPoint presentation"),
    ".png": (frozenset({"image/png"}), "a PNG image"),
    ".jpg": (frozenset({"image/jpeg"}), "a JPEG image"),
    ".jpeg": (frozenset({"image/jpeg"}), "a JPEG image"),
    ".tif": (frozenset({"image/tiff"}), "a TIFF image"),
    ".tiff": (frozenset({"image/tiff"}), "a TIFF image"),
}


def sniff_content_type(head: bytes, data: IO[bytes] | None = None) -> str:
    """The type the bytes prove: a MIME type, ``application/octet-stream`` for binary data of no
    known format. ``data`` (the whole upload, seekable) tells ZIP-based formats apart."""
    if b"%PDF-" in head[:1024]:  # the spec allows junk before the header
        return "application/pdf"
    if head.startswith(b"PK\x03\x04"):
        return _zip_type(data) if data is not None else ZIP
    for magic, mime in _MAGIC.items():
        if head.startswith(magic):
            return mime
    if b"\x00" in head:
        return OCTET_STREAM
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the sniff boundary
            return OCTET_STREAM
        text = head[: exc.start].decode("utf-8")
    stripped = text.lstrip("\ufeff \t\r\n").lower()
    if stripped.startswith(("<!doctype html", "<html")):
        return "text/html"
    if stripped.startswith(("{", "[")):
        return "application/json"
    return "text/plain"


def _zip_type(data: IO[bytes]) -> str:
    """Only the central directory is read (no member is inflated)."""
    try:
        data.seek(0)
        names = set(zipfile.ZipFile(data).namelist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return ZIP
    finally:
        data.seek(0)
    if "word/document.xml" in names:
        return DOCX
    if "xl/workbook.xml" in names:
        return XLSX
    if "ppt/presentation.xml" in names:
        return PPTX
    if "mimetype" in names:
        return "application/vnd.oasis.opendocument"
    return ZIP


class UnsupportedUpload(PermanentError):
    """An upload refused for what its bytes are (``detected_type``), or for not being what its
    name says it is."""

    def __init__(self, reason: str, detected_type: str) -> None:
        super().__init__(reason, code="unsupported_type")
        self.detected_type = detected_type


def accepted_type(name: str, detected: str) -> str:
    """The content type to store ``name`` under, given the ``detected`` one; raises
    ``UnsupportedUpload`` when the bytes are no format we read, or not the one the name says."""
    ext = os.path.splitext(name)[1].lower()
    what = f"{_LABELS.get(detected, detected)} ({detected})"
    promised, expected = _PROMISED.get(ext, (None, ""))
    if promised is not None and detected not in promised:
        raise UnsupportedUpload(
            f"{name}: the content is {what}, not {expected} as its name says; "
            "upload it under a name with the right extension",
            detected,
        )
    if detected not in ALLOWED:
        raise UnsupportedUpload(
            f"{name}: the content is {what}; upload a PDF, DOCX, XLSX, PPTX, CSV, EML, HTML, "
            "Markdown, text or JSON document, or a PNG/JPEG/TIFF scan",
            detected,
        )
    if detected == "text/plain" or (detected == "application/json" and ext in TEXT_TYPES):
        return TEXT_TYPES.get(ext, detected)  # Markdown, CSV, fragments: known by their name
    return detected


@contextlib.contextmanager
def _full_disk_is_insufficient_storage(where: str) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise InsufficientStorage(f"{where}: {exc.strerror}", dependency="landing") from exc
        raise


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

    def key_for(self, tenant: str, filename: str) -> str:
        """One key per (tenant, name): the same name again replaces the file, and the sync sees
        a new version of the same document (its id derives from the path)."""
        return f"{self.prefix}{tenant}/{filename}"

    def sidecar_key(self, tenant: str, filename: str) -> str:
        return f"{self.prefix}{tenant}/{sidecar_path(filename)}"

    async def receive(
        self,
        tenant: str,
        filename: str | None,
        stream: AsyncIterator[bytes],
        groups: tuple[str, ...] | None = None,
    ) -> Upload:
        """Validate and store one upload for the audience ``groups`` (None: the uploads
        source's rules decide); returns where it landed."""
        name = safe_filename(filename)
        # an unlinked temporary file past 8 MiB: nothing is left behind however this ends
        spool: IO[bytes] = SpooledTemporaryFile(max_size=8 << 20)  # noqa: SIM115
        with spool, _full_disk_is_insufficient_storage("upload spool"):
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
            content_type = accepted_type(name, sniff_content_type(head, spool))
            spool.seek(0)
            key = self.key_for(tenant, name)
            # the audience first: a sync between the two writes must not find the file alone
            side = self.sidecar_key(tenant, name)
            previous = await self._read_sidecar(side)
            audience = sidecar_bytes(groups)
            await self._write(
                side,
                io.BytesIO(audience),
                len(audience),
                "application/json",
                hashlib.sha256(audience).hexdigest(),
            )
            try:
                await self._write(key, spool, size, content_type, digest.hexdigest())
            except BaseException:
                await self._restore_sidecar(side, previous)  # the upload failed: as it was
                raise
        return Upload(key, name, size, digest.hexdigest(), content_type)

    @abc.abstractmethod
    async def _write(
        self, key: str, data: IO[bytes], size: int, content_type: str, sha256: str
    ) -> None: ...

    async def _read_sidecar(self, key: str) -> bytes | None:
        """The sidecar an earlier upload of the name left (None: none, or not readable here)."""
        return None

    async def _restore_sidecar(self, key: str, previous: bytes | None) -> None:  # noqa: B027
        """Put the sidecar back as it was after a failed upload (optional: a sidecar without its
        file is never read, and a failed S3 put leaves the old file, whose audience the caller
        then asked to change anyway)."""


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
            # unique per upload: two uploads of one name never share a temporary file
            tmp = final.parent / f".{final.name}.{uuid.uuid4().hex[:8]}.part"
            try:
                with open(tmp, "wb") as fh:
                    while block := data.read(1 << 20):
                        fh.write(block)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, final)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise

        with _full_disk_is_insufficient_storage("landing folder"):
            await asyncio.to_thread(write)

    async def _read_sidecar(self, key: str) -> bytes | None:
        try:
            return await asyncio.to_thread((self.root / key).read_bytes)
        except FileNotFoundError:
            return None

    async def _restore_sidecar(self, key: str, previous: bytes | None) -> None:
        path = self.root / key
        with contextlib.suppress(OSError):  # best effort, on the failure path
            if previous is None:
                await asyncio.to_thread(path.unlink, missing_ok=True)
            else:
                await asyncio.to_thread(path.write_bytes, previous)


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
        from datatorag.adapters.aws.session import dependency_check

        body = await asyncio.to_thread(data.read)
        # a missing bucket or permission is the landing zone being down (503), not a 500
        async with dependency_check(f"landing bucket {self.bucket}"):
            s3 = await self.clients.client("s3")
            await s3.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                ContentType=content_type,
                ContentLength=size,
                Metadata={"sha256": sha256},
            )
