"""Document parsing: bytes in, an ordered list of text/table/heading blocks out.

``parse_document`` picks a reader by magic bytes, then extension, then content type. Bad input
raises :class:`datatorag.domain.errors.PermanentError` with a human reason and a stable ``code``:
``empty_file``, ``too_large``, ``pdf_corrupt``, ``pdf_encrypted``, ``pdf_no_text_layer``,
``invalid_utf8``, ``unsupported_type``, ``docx_corrupt``, ``json_invalid``, ``xlsx_corrupt``,
``csv_invalid``, ``pptx_corrupt``, ``eml_invalid``, the OCR codes ``image_corrupt``,
``ocr_unavailable``, ``ocr_failed``, ``ocr_no_text``, and the limits' ``too_much_text``,
``too_many_pages``, ``too_many_cells``, ``decompression_bomb``, ``image_too_large``
(``datatorag.parsing.limits``).

Scanned PDF pages and images are read by OCR (``datatorag.parsing.ocr``); ``ParsedDocument.ocr``
lists those pages with their confidence.
"""

from __future__ import annotations

from collections.abc import Callable

from datatorag.domain.errors import PermanentError
from datatorag.parsing import detect
from datatorag.parsing.limits import LIMIT_CODES, ParseLimits, budget, cap_title
from datatorag.parsing.model import Block, OcrPage, ParsedDocument

__all__ = ["ERROR_CODES", "Block", "OcrPage", "ParseLimits", "ParsedDocument", "parse_document"]

ERROR_CODES = (
    "empty_file",
    "too_large",
    "pdf_corrupt",
    "pdf_encrypted",
    "pdf_no_text_layer",
    "invalid_utf8",
    "unsupported_type",
    "docx_corrupt",
    "json_invalid",
    "xlsx_corrupt",
    "csv_invalid",
    "pptx_corrupt",
    "eml_invalid",
    "image_corrupt",
    "ocr_unavailable",
    "ocr_failed",
    "ocr_no_text",
    *LIMIT_CODES,
)


def parse_document(
    data: bytes,
    *,
    filename: str,
    content_type: str | None = None,
    max_bytes: int | None = None,
    limits: ParseLimits | None = None,
) -> ParsedDocument:
    """Parse one document. Runs in the calling thread (PDF parses serialise on a lock).

    ``limits`` bound what the document may hold (text, pages, table cells, inflated bytes):
    exceeding one raises ``PermanentError`` with its code while reading, not after."""
    if max_bytes is not None and len(data) > max_bytes:
        raise PermanentError(
            f"{filename!r} is {_size(len(data))} ({len(data):,} bytes), over the limit of "
            f"{_size(max_bytes)} ({max_bytes:,} bytes)",
            code="too_large",
        )
    if not data:
        raise PermanentError(f"{filename!r} is empty (0 bytes)", code="empty_file")
    doc_type = detect.detect_type(data, filename, content_type)
    lim = limits or ParseLimits()
    with budget(lim, filename) as used:
        doc = _READERS[doc_type]()(data, filename)
        # readers charge as they go; formats read in one piece are charged here
        used.charge_text(sum(len(b.text) for b in doc.blocks) - used.chars)
        if doc.page_count:
            used.check_pages(doc.page_count)
    doc.title = cap_title(doc.title, lim.max_title_chars)
    if not doc.blocks:
        raise PermanentError(
            f"{filename!r} contains no text ({len(data):,} bytes of {doc_type} with nothing "
            "readable in them)",
            code="empty_file",
        )
    return doc


def _size(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def _pdf() -> Callable[[bytes, str], ParsedDocument]:
    from datatorag.parsing.pdf_reader import parse_pdf

    return parse_pdf


def _text() -> Callable[[bytes, str], ParsedDocument]:
    from datatorag.parsing.text_reader import parse_text

    return parse_text


def _docx() -> Callable[[bytes, str], ParsedDocument]:
    from datatorag.parsing.docx_reader import parse_docx

    return parse_docx


def _html() -> Callable[[bytes, str], ParsedDocument]:
    from datatorag.parsing.html_reader import parse_html

    return parse_html


def _markdown() -> Callable[[bytes, str], ParsedDocument]:
    from datatorag.parsing.markdown_reader import parse_markdown

    return parse_markdown


def _json() -> Callable[[bytes, str], ParsedDocument]:
    from datatorag.parsing.json_reader import parse_json

    return parse_json


def _xlsx() -> Callable[[bytes, str], ParsedDocument]:
    from datatorag.parsing.xlsx_reader import parse_xlsx

    return parse_xlsx


def _csv() -> Callable[[bytes, str], ParsedDocument]:
    from datatorag.parsing.csv_reader import parse_csv

    return parse_csv


def _pptx() -> Callable[[bytes, str], ParsedDocument]:
    from datatorag.parsing.pptx_reader import parse_pptx

    return parse_pptx


def _eml() -> Callable[[bytes, str], ParsedDocument]:
    from datatorag.parsing.eml_reader import parse_eml

    return parse_eml


def _image() -> Callable[[bytes, str], ParsedDocument]:
    from datatorag.parsing.image_reader import parse_image

    return parse_image


# readers import their libraries lazily: a text-only worker never loads PDFium or lxml
_READERS: dict[str, Callable[[], Callable[[bytes, str], ParsedDocument]]] = {
    detect.PDF: _pdf,
    detect.TEXT: _text,
    detect.DOCX: _docx,
    detect.HTML: _html,
    detect.MARKDOWN: _markdown,
    detect.JSON: _json,
    detect.XLSX: _xlsx,
    detect.CSV: _csv,
    detect.PPTX: _pptx,
    detect.EML: _eml,
    detect.IMAGE: _image,
}
