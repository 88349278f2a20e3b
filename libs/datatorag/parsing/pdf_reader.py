"""PDF: the text layer with pypdfium2, tables with pdfplumber's table finder on the pages that
have them.

pdfplumber reads 4-17 pages/s because pdfminer interprets every glyph in Python; pypdfium2 reads
130-450. So a page goes to the table finder only when PDFium shows a cheap signal (several
straight, axis-aligned path objects: cell borders and rules), and the finder is fed the ruling
edges PDFium already decoded (pdfplumber's own lattice algorithm: merge edges, intersections,
cells, tables); cell text then comes from PDFium's text page. A table page costs ~2 ms instead
of pdfplumber's ~250 ms.

Pages without a usable text layer that hold an image (scans) are rendered and read by OCR
(``datatorag.parsing.ocr``); two-column pages are read in column order
(``datatorag.parsing.pdf_columns``); running headers, footers and page numbers are dropped
(``datatorag.parsing.layout``).

PDFium is not thread-safe: every parse holds ``_PDFIUM_LOCK`` so callers may use threads
(``asyncio.to_thread``) without corrupting its global state.
"""

from __future__ import annotations

import ctypes
import re
import threading
from collections import Counter
from typing import Any

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from datatorag.domain.errors import PermanentError
from datatorag.parsing import limits, ocr
from datatorag.parsing.cleaning import clean_inline
from datatorag.parsing.layout import Line, Page, drop_running_lines, page_blocks
from datatorag.parsing.model import OcrPage, ParsedDocument
from datatorag.parsing.pdf_columns import column_lines

_PDFIUM_LOCK = threading.Lock()

# a page with at least this many straight ruling edges is worth a look for tables (one framed
# box has four)
_MIN_RULING_EDGES = 6
_MAX_PATHS_EXAMINED = 400
# a page with less text than this and an image on it is a scan (perhaps with a stamp or a page
# number in its text layer): it is read by OCR
_USABLE_TEXT_CHARS = 16
_TITLE_JUNK = re.compile(r"^(?:microsoft (?:word|powerpoint) - |untitled\b)", re.IGNORECASE)


def parse_pdf(data: bytes, filename: str) -> ParsedDocument:
    with _PDFIUM_LOCK:
        pdf = _open(data, filename)
        try:
            title_meta = _meta_title(pdf)
            used = limits.current()
            used.check_pages(len(pdf))
            page_list = []
            scanned: list[OcrPage] = []
            for i in range(len(pdf)):
                page, read = _read_page(pdf, i, filename)
                used.charge_text(sum(len(line.text) for line in page.lines))
                page_list.append(page)
                if read is not None:
                    scanned.append(read)
        finally:
            pdf.close()
    if not page_list:
        raise PermanentError(f"{filename!r}: the PDF has no pages", code="pdf_corrupt")
    empty = [p.number for p in page_list if not p.lines]
    if len(empty) == len(page_list):
        n = len(page_list)
        why = (
            f"OCR found no text on {'it' if n == 1 else 'them'}"
            if scanned
            else "OCR is not available: install tesseract-ocr"
            if ocr.tesseract_path() is None
            else "they hold no images to OCR either"
        )
        raise PermanentError(
            f"{filename!r} has no text layer: {n} of {n} page{'s' if n != 1 else ''} "
            f"contain no text (a scanned or image-only PDF; {why})",
            code="pdf_no_text_layer",
        )
    if scanned and len(scanned) < len(page_list):
        _match_sizes(page_list, {p.page for p in scanned})
    drop_running_lines(page_list)
    blocks, first_heading = page_blocks(page_list)
    title = title_meta or first_heading or next((b.text for b in blocks), None)
    return ParsedDocument(
        title=title, doc_type="pdf", page_count=len(page_list), blocks=blocks, ocr=scanned
    )


def _match_sizes(pages: list[Page], scanned: set[int]) -> None:
    """OCR estimates font sizes from line boxes: scale them so the usual OCR size is the usual
    text-layer size, or every line of a scanned page could pass for a heading."""
    ocr_sizes: Counter[float] = Counter()
    text_sizes: Counter[float] = Counter()
    for page in pages:
        target = ocr_sizes if page.number in scanned else text_sizes
        for line in page.lines:
            target[line.size] += len(line.text)
    if not ocr_sizes or not text_sizes:
        return
    ratio = text_sizes.most_common(1)[0][0] / max(ocr_sizes.most_common(1)[0][0], 0.1)
    for page in pages:
        if page.number in scanned:
            for line in page.lines:
                line.size = round(line.size * ratio, 1)


def _open(data: bytes, filename: str) -> pdfium.PdfDocument:
    try:
        return pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        code = getattr(exc, "err_code", None)
        if code == pdfium_c.FPDF_ERR_PASSWORD:
            raise PermanentError(
                f"{filename!r} is encrypted with a password; upload an unprotected copy",
                code="pdf_encrypted",
            ) from None
        if code == pdfium_c.FPDF_ERR_SECURITY:
            raise PermanentError(
                f"{filename!r} uses an unsupported security handler (encrypted PDF)",
                code="pdf_encrypted",
            ) from None
        raise PermanentError(
            f"{filename!r} is not a readable PDF ({exc}); the file is corrupt or truncated",
            code="pdf_corrupt",
        ) from None


def _meta_title(pdf: pdfium.PdfDocument) -> str | None:
    try:
        title = clean_inline(pdf.get_metadata_value("Title") or "")
    except Exception:  # noqa: BLE001 - broken metadata must not fail the parse
        return None
    title = _TITLE_JUNK.sub("", title).strip()
    return title if len(title) >= 3 else None


def _read_page(pdf: pdfium.PdfDocument, index: int, filename: str) -> tuple[Page, OcrPage | None]:
    """Lines of one page with position and font, and the ruled tables on it; by OCR for a page
    without a usable text layer that holds an image (a scan)."""
    try:
        page = pdf[index]
    except pdfium.PdfiumError as exc:
        raise PermanentError(
            f"{filename!r}: page {index + 1} of {len(pdf)} cannot be read ({exc}); "
            "the PDF is corrupt",
            code="pdf_corrupt",
        ) from None
    try:
        textpage = page.get_textpage()
        try:
            result = Page(index + 1, _lines(textpage, index + 1), [])
            if result.lines:
                columns = column_lines(textpage, result.lines, index + 1, _is_bold)
                if columns is not None:
                    result.lines = columns
                edges = _ruling_edges(page)
                if len(edges) >= _MIN_RULING_EDGES:
                    _find_tables(result, edges, textpage, page.get_height())
        finally:
            textpage.close()
        scan = None
        if sum(len(ln.text) for ln in result.lines) < _USABLE_TEXT_CHARS and _has_image(page):
            scan = _ocr_page(page, index + 1, filename)
            if scan is not None:
                result = Page(index + 1, scan.lines, [])
    finally:
        page.close()
    return result, scan.page if scan is not None else None


def _has_image(page: pdfium.PdfPage) -> bool:
    return any(True for _ in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=3))


def _ocr_page(page: pdfium.PdfPage, number: int, filename: str) -> ocr.OcrResult | None:
    """The page rendered at OCR resolution (less for a huge page: the pixel limit), then read."""
    if ocr.tesseract_path() is None:
        return None
    width, height = page.get_size()
    scale = ocr.RENDER_DPI / 72
    cap = limits.current().limits.max_image_pixels
    if width * height * scale * scale > cap:
        scale = (cap / (width * height)) ** 0.5
    bitmap = page.render(scale=scale, grayscale=True)
    try:
        image = bitmap.to_pil()
        return ocr.ocr_image(image, page=number, scale=scale, filename=filename)
    finally:
        bitmap.close()


def _lines(textpage: pdfium.PdfTextPage, page_no: int) -> list[Line]:
    # PDFium joins a word hyphenated across lines itself and leaves U+FFFE where the hyphen was
    text = textpage.get_text_range()
    if not text.strip():
        return []
    raw = textpage.raw
    x, y = ctypes.c_double(), ctypes.c_double()
    out: list[Line] = []
    pos = 0
    for piece in re.split(r"(\r\n|\r|\n)", text):
        if piece in ("\r\n", "\r", "\n"):
            pos += len(piece)
            continue
        stripped = piece.strip()
        if stripped:
            lead = len(piece) - len(piece.lstrip())
            char = pdfium_c.FPDFText_GetCharIndexFromTextIndex(raw, pos + lead)
            if char < 0:
                char = pos + lead
            pdfium_c.FPDFText_GetCharOrigin(raw, char, x, y)
            size = pdfium_c.FPDFText_GetFontSize(raw, char)
            out.append(
                Line(stripped, page_no, x.value, y.value, round(size, 1), _is_bold(raw, char))
            )
        pos += len(piece)
    return out


_FONT_NAME = ctypes.create_string_buffer(256)
_FONT_FLAGS = ctypes.c_int()
_FORCE_BOLD = 1 << 18  # PDF font descriptor flag 19


def _is_bold(raw: object, char: int) -> bool:
    weight = pdfium_c.FPDFText_GetFontWeight(raw, char)
    if weight > 0:
        return bool(weight >= 600)
    # base-14 and some embedded fonts report no weight: go by the flags and the font name
    n = pdfium_c.FPDFText_GetFontInfo(raw, char, _FONT_NAME, len(_FONT_NAME), _FONT_FLAGS)
    name = _FONT_NAME.raw[: max(0, min(n, len(_FONT_NAME)) - 1)].decode("latin-1").lower()
    return bool(_FONT_FLAGS.value & _FORCE_BOLD) or "bold" in name or "black" in name


def _ruling_edges(page: pdfium.PdfPage) -> list[dict[str, Any]]:
    """Axis-aligned straight segments of the page's paths, as pdfplumber edge dicts (top-down
    coordinates). Paths with curves are skipped: logos and drawings are not tables."""
    height = page.get_height()
    edges: list[dict[str, Any]] = []
    forms: dict[int, tuple[float, ...]] = {}  # level -> form matrix composed to page space
    x, y = ctypes.c_float(), ctypes.c_float()
    examined = 0
    for obj in page.get_objects(max_depth=2):
        if obj.type == pdfium_c.FPDF_PAGEOBJ_FORM:
            forms[obj.level] = _compose(_matrix(obj), forms.get(obj.level - 1, _IDENTITY))
            continue
        if obj.type != pdfium_c.FPDF_PAGEOBJ_PATH:
            continue
        examined += 1
        if examined > _MAX_PATHS_EXAMINED:
            break
        n = pdfium_c.FPDFPath_CountSegments(obj.raw)
        if n <= 0 or n > 64:
            continue
        m = (
            _compose(_matrix(obj), forms.get(obj.level - 1, _IDENTITY))
            if obj.level
            else _matrix(obj)
        )
        points: list[tuple[int, float, float, bool]] = []
        for i in range(n):
            seg = pdfium_c.FPDFPath_GetPathSegment(obj.raw, i)
            kind = pdfium_c.FPDFPathSegment_GetType(seg)
            if kind == pdfium_c.FPDF_SEGMENT_BEZIERTO:
                points = []
                break
            pdfium_c.FPDFPathSegment_GetPoint(seg, x, y)
            px = m[0] * x.value + m[2] * y.value + m[4]
            py = m[1] * x.value + m[3] * y.value + m[5]
            points.append((kind, px, py, bool(pdfium_c.FPDFPathSegment_GetClose(seg))))
        start: tuple[float, float] | None = None
        prev: tuple[float, float] | None = None
        for kind, px, py, close in points:
            if kind == pdfium_c.FPDF_SEGMENT_MOVETO or prev is None:
                start = prev = (px, py)
                continue
            _add_edge(edges, prev, (px, py), height)
            prev = (px, py)
            if close and start is not None:
                _add_edge(edges, prev, start, height)
                prev = start
    return edges


_IDENTITY = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)


def _matrix(obj: pdfium.PdfObject) -> tuple[float, ...]:
    m = obj.get_matrix()
    return (m.a, m.b, m.c, m.d, m.e, m.f)


def _compose(inner: tuple[float, ...], outer: tuple[float, ...]) -> tuple[float, ...]:
    """The matrix applying ``inner`` then ``outer`` (PDF row-vector convention)."""
    a, b, c, d, e, f = inner
    A, B, C, D, E, F = outer
    return (
        a * A + b * C,
        a * B + b * D,
        c * A + d * C,
        c * B + d * D,
        e * A + f * C + E,
        e * B + f * D + F,
    )


def _add_edge(
    edges: list[dict[str, Any]], p: tuple[float, float], q: tuple[float, float], height: float
) -> None:
    (x0, y0), (x1, y1) = p, q
    if abs(y0 - y1) < 0.5 and abs(x1 - x0) >= 1:  # horizontal
        top = height - y0
        edges.append(
            {
                "object_type": "line",
                "orientation": "h",
                "x0": min(x0, x1),
                "x1": max(x0, x1),
                "top": top,
                "bottom": top,
                "width": abs(x1 - x0),
                "height": 0.0,
            }
        )
    elif abs(x0 - x1) < 0.5 and abs(y1 - y0) >= 1:  # vertical
        top, bottom = height - max(y0, y1), height - min(y0, y1)
        edges.append(
            {
                "object_type": "line",
                "orientation": "v",
                "x0": x0,
                "x1": x0,
                "top": top,
                "bottom": bottom,
                "width": 0.0,
                "height": bottom - top,
            }
        )


def _find_tables(
    page: Page, edges: list[dict[str, Any]], textpage: pdfium.PdfTextPage, height: float
) -> None:
    """pdfplumber's lattice table finder on PDFium's edges; marks the lines inside each table."""
    from pdfplumber.table import (
        Table,
        TableSettings,
        cells_to_tables,
        edges_to_intersections,
        intersections_to_cells,
        merge_edges,
    )
    from pdfplumber.utils.geometry import filter_edges

    cfg = TableSettings.resolve(None)
    merged = filter_edges(
        merge_edges(
            edges,
            snap_x_tolerance=cfg.snap_x_tolerance,
            snap_y_tolerance=cfg.snap_y_tolerance,
            join_x_tolerance=cfg.join_x_tolerance,
            join_y_tolerance=cfg.join_y_tolerance,
        ),
        min_length=cfg.edge_min_length,
    )
    crossings = edges_to_intersections(
        merged, cfg.intersection_x_tolerance, cfg.intersection_y_tolerance
    )
    for cells in cells_to_tables(intersections_to_cells(crossings)):
        table = Table(None, cells)  # type: ignore[arg-type]  # rows/bbox need no page
        rows = [
            [_cell_text(textpage, c, height) if c else "" for c in row.cells] for row in table.rows
        ]
        rows = [r for r in rows if any(r)]
        if len(rows) < 2 or max(len(r) for r in rows) < 2:
            continue  # a framed paragraph, not a table
        x0, top, x1, bottom = table.bbox
        box = (x0 - 1, height - bottom - 1, x1 + 1, height - top + 1)  # back to y-up
        limits.current().charge_cells(sum(len(r) for r in rows))
        page.tables.append((box, rows))
        for line in page.lines:
            if line.table is None and box[0] <= line.x <= box[2] and box[1] <= line.y <= box[3]:
                line.table = len(page.tables) - 1


def _cell_text(textpage: pdfium.PdfTextPage, cell: tuple[float, ...], height: float) -> str:
    x0, top, x1, bottom = cell
    return clean_inline(
        textpage.get_text_bounded(left=x0, bottom=height - bottom, right=x1, top=height - top)
    )
