"""Bytes -> str for the text formats: UTF-8 (with or without BOM) and UTF-16 with a BOM."""

from __future__ import annotations

import codecs
import re

from datatorag.domain.errors import PermanentError

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_.:-]+)""", re.IGNORECASE)


def decode_text(data: bytes, filename: str) -> str:
    if data.startswith(codecs.BOM_UTF8):
        return _strict(data[3:], "utf-8", filename, base=3)
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _strict(data, "utf-16", filename)
    return _strict(data, "utf-8", filename)


def decode_html(data: bytes, filename: str) -> str:
    """HTML may declare a legacy charset; honour it only when the bytes are not UTF-8."""
    try:
        return decode_text(data, filename)
    except PermanentError:
        match = _META_CHARSET.search(data[:4096])
        if not match:
            raise
        charset = match.group(1).decode("ascii").lower()
        try:
            return data.decode(charset)
        except (LookupError, UnicodeDecodeError):
            raise PermanentError(
                f"{filename!r} declares charset {charset!r} but cannot be decoded with it",
                code="invalid_utf8",
            ) from None


def _strict(data: bytes, encoding: str, filename: str, base: int = 0) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        offset = base + exc.start
        bad = data[exc.start : exc.start + 1]
        raise PermanentError(
            f"{filename!r} is not valid {encoding.upper()} text: invalid byte "
            f"0x{bad.hex()} at byte offset {offset} ({exc.reason}); "
            "save it as UTF-8 (UTF-16 is accepted with a byte-order mark)",
            code="invalid_utf8",
        ) from None
