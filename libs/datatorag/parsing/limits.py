"""Per-document limits, enforced while a document is read rather than after.

``parse_document`` installs a :class:`Budget` for the duration of one parse (a context variable,
so concurrent parses in threads never share one); readers charge what they extract to it and the
first charge over a limit raises ``PermanentError`` with the limit's code. Archive formats are
checked from their central directory before a single member is inflated.
"""

from __future__ import annotations

import contextvars
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from datatorag.domain.errors import PermanentError

# the codes a limit records against a document (the registry's ``error_code``)
LIMIT_CODES = (
    "too_much_text",
    "too_many_pages",
    "too_many_chunks",
    "too_many_cells",
    "decompression_bomb",
    "image_too_large",
    "memory_limit",
    "parse_timeout",
)


@dataclass(frozen=True)
class ParseLimits:
    max_chars: int = 10_000_000
    max_pages: int = 5_000
    max_chunks: int = 20_000
    max_title_chars: int = 200
    max_table_cells: int = 500_000
    max_unzipped_bytes: int = 512 * 1024 * 1024
    max_xml_bytes: int = 64 * 1024 * 1024
    # pixels of one image to OCR (an A4 page at 600 dpi is 35 M); checked from the header
    max_image_pixels: int = 60_000_000


class Budget:
    """What one document has used so far."""

    def __init__(self, limits: ParseLimits, filename: str) -> None:
        self.limits = limits
        self.filename = filename
        self.chars = 0
        self.cells = 0

    def charge_text(self, n: int) -> None:
        self.chars += n
        if self.chars > self.limits.max_chars:
            raise PermanentError(
                f"{self.filename!r} holds more than {self.limits.max_chars:,} characters of text "
                "(DATATORAG_LIMIT_MAX_CHARS); split it or raise the limit",
                code="too_much_text",
            )

    def charge_cells(self, n: int) -> None:
        self.cells += n
        if self.cells > self.limits.max_table_cells:
            raise PermanentError(
                f"{self.filename!r} holds more than {self.limits.max_table_cells:,} table cells "
                "(DATATORAG_LIMIT_MAX_TABLE_CELLS)",
                code="too_many_cells",
            )

    def check_pages(self, n: int) -> None:
        if n > self.limits.max_pages:
            raise PermanentError(
                f"{self.filename!r} has {n:,} pages, over the limit of {self.limits.max_pages:,} "
                "(DATATORAG_LIMIT_MAX_PAGES)",
                code="too_many_pages",
            )

    def check_image(self, width: int, height: int, where: str) -> None:
        """Refuse an image over the pixel limit from its declared size, before decoding it."""
        if width * height > self.limits.max_image_pixels:
            raise PermanentError(
                f"{self.filename!r}: {where} is {width:,} x {height:,} pixels "
                f"({width * height:,}), over the limit of {self.limits.max_image_pixels:,} "
                "pixels for OCR (DATATORAG_LIMIT_MAX_IMAGE_PIXELS)",
                code="image_too_large",
            )

    def check_archive(self, archive: zipfile.ZipFile, xml_prefixes: tuple[str, ...]) -> None:
        """Refuse a zip whose members would inflate past the limits, before reading any."""
        total = xml = 0
        for info in archive.infolist():
            total += info.file_size
            if info.filename.endswith((".xml", ".rels")) and info.filename.startswith(xml_prefixes):
                xml += info.file_size
        lim = self.limits
        if total > lim.max_unzipped_bytes or xml > lim.max_xml_bytes:
            raise PermanentError(
                f"{self.filename!r} inflates to {total:,} bytes ({xml:,} of them XML); the limits "
                f"are {lim.max_unzipped_bytes:,} and {lim.max_xml_bytes:,} "
                "(DATATORAG_LIMIT_MAX_UNZIPPED_BYTES, _MAX_XML_BYTES)",
                code="decompression_bomb",
            )


_current: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("budget", default=None)


@contextmanager
def budget(limits: ParseLimits, filename: str) -> Iterator[Budget]:
    b = Budget(limits, filename)
    token = _current.set(b)
    try:
        yield b
    finally:
        _current.reset(token)


def current() -> Budget:
    """The budget of the parse in progress; readers called directly get the defaults."""
    b = _current.get()
    return b if b is not None else Budget(ParseLimits(), "<document>")


def cap_title(title: str | None, max_chars: int) -> str | None:
    """Titles are labels: one line, at most ``max_chars`` (cut at a word where one is near)."""
    if not title:
        return title
    line = " ".join(title.split())
    if len(line) <= max_chars:
        return line
    cut = line[: max_chars - 1]
    space = cut.rfind(" ")
    if space >= max_chars // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:-") + "…"
