"""Which reader handles a document: magic bytes first, then file extension, then content type,
then a look at the first bytes."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import PurePosixPath

from datatorag.domain.errors import PermanentError

PDF, DOCX, HTML, MARKDOWN, TEXT, JSON = "pdf", "docx", "html", "markdown", "text", "json"
XLSX, PPTX, CSV, EML, IMAGE = "xlsx", "pptx", "csv", "eml", "image"

# an RFC 5322 message starts with header fields; these are the ones a saved message starts with
_EMAIL_HEADER = re.compile(
    r"^(?:return-path|received|from|to|subject|date|message-id|mime-version|delivered-to)"
    r":[^\n]*\r?\n(?:[!-9;-~]+:[^\n]*\r?\n|[ \t][^\n]*\r?\n)+",
    re.IGNORECASE,
)
_EXTENSIONS = {
    ".pdf": PDF,
    ".docx": DOCX,
    ".html": HTML,
    ".htm": HTML,
    ".xhtml": HTML,
    ".md": MARKDOWN,
    ".markdown": MARKDOWN,
    ".mdown": MARKDOWN,
    ".txt": TEXT,
    ".text": TEXT,
    ".csv": CSV,
    ".tsv": CSV,
    ".xlsx": XLSX,
    ".xlsm": XLSX,
    ".pptx": PPTX,
    ".eml": EML,
    ".png": IMAGE,
    ".jpg": IMAGE,
    ".jpeg": IMAGE,
    ".tif": IMAGE,
    ".tiff": IMAGE,
    ".log": TEXT,
    ".rst": TEXT,
    ".json": JSON,
}
_CONTENT_TYPES = {
    "application/pdf": PDF,
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": DOCX,
    "text/html": HTML,
    "application/xhtml+xml": HTML,
    "text/markdown": MARKDOWN,
    "text/x-markdown": MARKDOWN,
    "text/plain": TEXT,
    "text/csv": CSV,
    "text/tab-separated-values": CSV,
    "application/json": JSON,
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": XLSX,
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": PPTX,
    "message/rfc822": EML,
    "image/png": IMAGE,
    "image/jpeg": IMAGE,
    "image/tiff": IMAGE,
}
# formats people do send and that we refuse with a hint rather than a bare "unsupported"
_KNOWN_UNSUPPORTED = {
    ".doc": "legacy Word .doc; save it as .docx",
    ".xls": "spreadsheet",
    ".ods": "spreadsheet",
    ".ppt": "presentation",
    ".odp": "presentation",
    ".odt": "OpenDocument text; save it as .docx",
    ".rtf": "RTF; save it as .docx",
    ".gif": "GIF image; save it as PNG",
    ".zip": "zip archive",
}
_MAGIC_IMAGES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*")
_MAGIC_UNSUPPORTED = {
    b"\xd0\xcf\x11\xe0": "legacy Microsoft Office (OLE) file; save it as .docx",
    b"GIF8": "GIF image",
    b"\x1f\x8b": "gzip archive",
    b"{\\rtf": "RTF document; save it as .docx",
}


def detect_type(data: bytes, filename: str, content_type: str | None) -> str:
    """The reader for ``data``; raises PermanentError(code="unsupported_type") when none fits."""
    head = data[:1024]
    if b"%PDF-" in head:  # the spec allows junk before the header
        return PDF
    ext = PurePosixPath(filename.lower()).suffix
    if head.startswith(_MAGIC_IMAGES):
        return IMAGE
    if head.startswith(b"PK\x03\x04"):
        kind = _zip_kind(data)
        if kind in (DOCX, XLSX, PPTX):
            return kind
        if ext in (".docx", ".xlsx", ".xlsm", ".pptx"):
            return _EXTENSIONS[ext]  # the reader explains what is missing (*_corrupt)
        raise PermanentError(
            f"unsupported document type: {filename!r} is a zip archive ({kind}), "
            "not a PDF, DOCX, XLSX, PPTX, HTML, Markdown, text or JSON document or an image",
            code="unsupported_type",
        )
    for magic, what in _MAGIC_UNSUPPORTED.items():
        if head.startswith(magic):
            raise PermanentError(
                f"unsupported document type: {filename!r} is a {what}", code="unsupported_type"
            )
    if ext in _EXTENSIONS:
        return _EXTENSIONS[ext]
    if ext in _KNOWN_UNSUPPORTED:
        raise PermanentError(
            f"unsupported document type {ext!r} ({_KNOWN_UNSUPPORTED[ext]}) for {filename!r}",
            code="unsupported_type",
        )
    mime = (content_type or "").split(";")[0].strip().lower()
    if mime in _CONTENT_TYPES:
        return _CONTENT_TYPES[mime]
    return _sniff_text(head, filename, mime)


def _zip_kind(data: bytes) -> str:
    try:
        names = set(zipfile.ZipFile(io.BytesIO(data)).namelist())
    except Exception:  # noqa: BLE001 - BadZipFile, NotImplementedError, struct errors...
        return "unreadable zip"
    if "word/document.xml" in names:
        return DOCX
    if "xl/workbook.xml" in names:
        return XLSX
    if "ppt/presentation.xml" in names:
        return PPTX
    if "mimetype" in names:
        return "an OpenDocument file"
    return "a plain zip"


def _sniff_text(head: bytes, filename: str, mime: str) -> str:
    if head.startswith((b"\xff\xfe", b"\xfe\xff", b"\xef\xbb\xbf")):
        body = head.decode(
            "utf-16" if head[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig", errors="ignore"
        )
    elif b"\x00" in head:
        raise PermanentError(
            f"unsupported document type: {filename!r} is binary data"
            + (f" ({mime})" if mime else "")
            + " with no recognised format",
            code="unsupported_type",
        )
    else:
        body = head.decode("utf-8", errors="ignore")
    start = body.lstrip()[:64].lower()
    if start.startswith(("<!doctype html", "<html")):
        return HTML
    if start.startswith(("{", "[")):
        return JSON
    if _EMAIL_HEADER.match(body.lstrip()) and "\n\n" in body.replace("\r\n", "\n"):
        return EML
    if mime and not mime.startswith("text/"):
        raise PermanentError(
            f"unsupported document type {mime!r} for {filename!r}", code="unsupported_type"
        )
    return TEXT
