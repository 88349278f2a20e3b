"""CSV and TSV: one table whose first row is the header the chunker repeats in every chunk. The
encoding is UTF-8 (or UTF-16 with a BOM) or else detected (charset-normalizer: Excel on Windows
saves CSV in the ANSI code page); the delimiter is sniffed among , ; tab and |."""

from __future__ import annotations

import csv
import io
from pathlib import PurePosixPath

from datatorag.domain.errors import PermanentError
from datatorag.parsing import limits
from datatorag.parsing.cleaning import clean_inline, normalise
from datatorag.parsing.model import Block, ParsedDocument
from datatorag.parsing.tables import table_text, trim_row
from datatorag.parsing.textdecode import decode_text

_DELIMITERS = ",;\t|"


def parse_csv(data: bytes, filename: str) -> ParsedDocument:
    text = normalise(_decode(data, filename))
    used = limits.current()
    reader = csv.reader(io.StringIO(text, newline=""), _dialect(text, filename))
    rows: list[list[str]] = []
    try:
        for record in reader:
            cells = trim_row([clean_inline(c) for c in record])
            if cells:
                used.charge_cells(len(cells))
                rows.append(cells)
    except csv.Error as exc:
        raise PermanentError(
            f"{filename!r} is not valid CSV at line {reader.line_num}: {exc}", code="csv_invalid"
        ) from None
    stem = PurePosixPath(filename).stem or filename
    blocks = [Block(table_text(rows), None, stem, "table", header_row=True)] if rows else []
    return ParsedDocument(title=stem, doc_type="csv", page_count=None, blocks=blocks)


def _decode(data: bytes, filename: str) -> str:
    try:
        return decode_text(data, filename)
    except PermanentError as utf8_error:
        from charset_normalizer import from_bytes

        best = from_bytes(data[: 1 << 20]).best()
        # A short export with a few accented letters fits a dozen Latin code pages equally
        # well; Excel writes the Western one (cp1252), so Latin-script text is read as that.
        if best is None or all("Latin" in a or a == "Control character" for a in best.alphabets):
            try:
                return data.decode("cp1252")
            except UnicodeDecodeError:
                pass
        if best is None:
            raise utf8_error from None
        try:
            return data.decode(best.encoding)
        except (LookupError, UnicodeDecodeError):
            raise utf8_error from None


def _dialect(text: str, filename: str) -> type[csv.Dialect] | csv.Dialect:
    if PurePosixPath(filename.lower()).suffix == ".tsv":
        return csv.excel_tab
    sample = text[:16384]
    try:
        return csv.Sniffer().sniff(sample, delimiters=_DELIMITERS)
    except csv.Error:
        return csv.excel  # one column, or too irregular to tell: commas
