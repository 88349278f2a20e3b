"""XLSX with openpyxl in read-only mode (rows streamed from the sheet XML, never a whole sheet
in memory): each worksheet is a section holding one table, its first non-empty row the header
that the chunker repeats in every chunk. Formulas give their cached values."""

from __future__ import annotations

import io
import zipfile
from pathlib import PurePosixPath

from datatorag.domain.errors import PermanentError
from datatorag.parsing import limits
from datatorag.parsing.cleaning import clean_inline
from datatorag.parsing.model import Block, ParsedDocument
from datatorag.parsing.tables import cell_text, table_text, trim_row


def parse_xlsx(data: bytes, filename: str) -> ParsedDocument:
    import openpyxl

    used = limits.current()
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            used.check_archive(archive, ("xl/",))
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except PermanentError:
        raise
    except Exception as exc:  # noqa: BLE001 - zip, XML and openpyxl errors all mean a broken file
        raise PermanentError(
            f"{filename!r} is not a readable XLSX workbook ({type(exc).__name__}: {exc})",
            code="xlsx_corrupt",
        ) from None
    blocks: list[Block] = []
    try:
        for sheet in book.worksheets:
            name = clean_inline(sheet.title) or "Sheet"
            rows: list[list[str]] = []
            for values in sheet.iter_rows(values_only=True):
                cells = trim_row([cell_text(v) for v in values])
                if cells:
                    used.charge_cells(len(cells))
                    rows.append(cells)
            if rows:
                blocks.append(Block(name, None, name, "heading"))
                blocks.append(Block(table_text(rows), None, name, "table", header_row=True))
        title = clean_inline(book.properties.title or "") or PurePosixPath(filename).stem
    except PermanentError:
        raise
    except Exception as exc:  # noqa: BLE001 - a malformed sheet part fails while streaming
        raise PermanentError(
            f"{filename!r}: a worksheet cannot be read ({type(exc).__name__}: {exc})",
            code="xlsx_corrupt",
        ) from None
    finally:
        book.close()
    return ParsedDocument(title=title, doc_type="xlsx", page_count=None, blocks=blocks)
