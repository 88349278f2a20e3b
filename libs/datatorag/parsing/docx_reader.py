"""DOCX with python-docx: paragraphs and tables in body order; headings by paragraph style."""

from __future__ import annotations

import io
import re
import zipfile
from typing import TYPE_CHECKING

from datatorag.domain.errors import PermanentError
from datatorag.parsing import limits
from datatorag.parsing.cleaning import clean_inline, clean_paragraph
from datatorag.parsing.model import Block, ParsedDocument

if TYPE_CHECKING:
    from docx.table import Table

_HEADING_STYLE = re.compile(r"^(?:heading\s*\d|title|subtitle)$", re.IGNORECASE)


def parse_docx(data: bytes, filename: str) -> ParsedDocument:
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    used = limits.current()
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            used.check_archive(archive, ("word/",))
    except zipfile.BadZipFile as exc:
        raise PermanentError(
            f"{filename!r} is not a readable DOCX ({_why(exc)})", code="docx_corrupt"
        ) from None
    try:
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise PermanentError(
            f"{filename!r} is not a readable DOCX ({_why(exc)})", code="docx_corrupt"
        ) from None
    except Exception as exc:  # noqa: BLE001 - lxml/opc errors vary; all mean a broken package
        raise PermanentError(
            f"{filename!r} is not a readable DOCX ({type(exc).__name__}: {exc})",
            code="docx_corrupt",
        ) from None

    blocks: list[Block] = []
    section: str | None = None
    title: str | None = None
    body = document.element.body
    for child in body.iterchildren():
        tag = child.tag.rsplit("}", 1)[-1]
        if tag == "p":
            para = Paragraph(child, document)
            style = (para.style.name if para.style is not None else "") or ""
            if _HEADING_STYLE.match(style.strip()):
                text = clean_inline(para.text)
                if not text:
                    continue
                if style.lower() == "title" and title is None:
                    title = text
                section = text
                blocks.append(Block(text, None, section, "heading"))
            else:
                text = clean_paragraph(para.text)
                if text:
                    used.charge_text(len(text))
                    blocks.append(Block(text, None, section, "text"))
        elif tag == "tbl":
            rows = _table_rows(Table(child, document))
            used.charge_cells(sum(len(r) for r in rows))
            if rows:
                blocks.append(Block("\n".join(" | ".join(r) for r in rows), None, section, "table"))

    core_title = clean_inline(document.core_properties.title or "")
    title = (
        core_title
        or title
        or next((b.text for b in blocks if b.kind == "heading"), None)
        or next((b.text for b in blocks), None)
    )
    return ParsedDocument(title=title, doc_type="docx", page_count=None, blocks=blocks)


def _table_rows(table: Table) -> list[list[str]]:
    rows = []
    for row in table.rows:
        cells: list[str] = []
        seen: set[int] = set()
        for cell in row.cells:
            # a merged cell is returned once per grid column it spans: keep it once
            if id(cell._tc) in seen:
                continue
            seen.add(id(cell._tc))
            cells.append(clean_inline(cell.text))
        if any(cells):
            rows.append(cells)
    return rows


def _why(exc: Exception) -> str:
    if isinstance(exc, zipfile.BadZipFile):
        return "not a valid zip package"
    if isinstance(exc, KeyError):
        return f"missing part {exc}"
    return str(exc)
