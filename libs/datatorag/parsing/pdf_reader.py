"""PDF: the text layer with pypdfium2, tables with pdfplumber's table finder on the pages that
have them.

pdfplumber reads 4-17 pages/s because pdfminer interprets every glyph in Python; pypdfium2 reads
130-450. So a page goes to the table finder only when PDFium shows a cheap signal (several
straight, axis-aligned path objects: cell borders and rules), and the finder is fed the ruling
edges PDFium already decoded (pdfplumber's own lattice algorithm: merge edges, intersections,
cells, tables); cell text then comes from PDFium's text page. A table page costs ~2 ms instead
of pdfplumber's ~250 ms.

PDFium is not thread-safe: every parse holds ``_PDFIUM_LOCK`` so callers may use threads
(``asyncio.to_thread``) without corrupting its global state.
"""

from __future__ import annotations

import ctypes
import re
import threading
from collections import Counter
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from datatorag.domain.errors import PermanentError
from datatorag.parsing import limits
from datatorag.parsing.cleaning import clean_inline, clean_paragraph
from datatorag.parsing.headings import is_numbered_heading, looks_like_heading_text
from datatorag.parsing.model import Block, ParsedDocument

_PDFIUM_LOCK = threading.Lock()

# a page with at least this many straight ruling edges is worth a look for tables (one framed
# box has four)
_MIN_RULING_EDGES = 6
_MAX_PATHS_EXAMINED = 400
_HEADING_SIZE_RATIO = 1.15
_PARAGRAPH_GAP_RATIO = 1.45
_EDGE_LINES = 3  # lines at the top/bottom of a page examined for running headers/footers
_PAGE_NUMBER = re.compile(
    r"^(?:page\s*)?#(?:\s*(?:of|/)\s*#)?$|^[-\u2013\u2014]\s*#\s*[-\u2013\u2014]$|^[ivxlc]{1,6}$"
)
_TITLE_JUNK = re.compile(r"^(?:microsoft (?:word|powerpoint) - |untitled\b)", re.IGNORECASE)


@dataclass
class _Line:
    text: str
    page: int
    x: float
    y: float  # baseline, PDF units, growing upwards
    size: float
    bold: bool
    drop: bool = False
    table: int | None = None  # index into _Page.tables when the line sits inside a table


@dataclass
class _Page:
    number: int
    lines: list[_Line]
    tables: list[tuple[tuple[float, float, float, float], list[list[str]]]]


def parse_pdf(data: bytes, filename: str) -> ParsedDocument:
    with _PDFIUM_LOCK:
        pdf = _open(data, filename)
        try:
            title_meta = _meta_title(pdf)
            used = limits.current()
            used.check_pages(len(pdf))
            page_list = []
            for i in range(len(pdf)):
                page = _read_page(pdf, i, filename)
                used.charge_text(sum(len(line.text) for line in page.lines))
                page_list.append(page)
        finally:
            pdf.close()
    if not page_list:
        raise PermanentError(f"{filename!r}: the PDF has no pages", code="pdf_corrupt")
    empty = [p.number for p in page_list if not p.lines]
    if len(empty) == len(page_list):
        n = len(page_list)
        raise PermanentError(
            f"{filename!r} has no text layer: {n} of {n} page{'s' if n != 1 else ''} "
            "contain no text (a scanned or image-only PDF; OCR is not supported)",
            code="pdf_no_text_layer",
        )
    _drop_running_lines(page_list)
    blocks, first_heading = _blocks(page_list)
    title = title_meta or first_heading or next((b.text for b in blocks), None)
    return ParsedDocument(title=title, doc_type="pdf", page_count=len(page_list), blocks=blocks)


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


def _read_page(pdf: pdfium.PdfDocument, index: int, filename: str) -> _Page:
    """Lines of one page with position and font, and the ruled tables on it."""
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
            result = _Page(index + 1, _lines(textpage, index + 1), [])
            if result.lines:
                edges = _ruling_edges(page)
                if len(edges) >= _MIN_RULING_EDGES:
                    _find_tables(result, edges, textpage, page.get_height())
        finally:
            textpage.close()
    finally:
        page.close()
    return result


def _lines(textpage: pdfium.PdfTextPage, page_no: int) -> list[_Line]:
    # PDFium joins a word hyphenated across lines itself and leaves U+FFFE where the hyphen was
    text = textpage.get_text_range()
    if not text.strip():
        return []
    raw = textpage.raw
    x, y = ctypes.c_double(), ctypes.c_double()
    out: list[_Line] = []
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
                _Line(stripped, page_no, x.value, y.value, round(size, 1), _is_bold(raw, char))
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
    page: _Page, edges: list[dict[str, Any]], textpage: pdfium.PdfTextPage, height: float
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


def _edge_key(text: str) -> str:
    return re.sub(r"\d+", "#", text.lower()).strip()


def _drop_running_lines(pages: list[_Page]) -> None:
    """Drop page-number lines, and header/footer lines repeated on most pages."""
    counts: Counter[str] = Counter()
    edges: list[list[_Line]] = []
    for page in pages:
        body = [ln for ln in page.lines if ln.table is None]
        edge = body[:_EDGE_LINES] + body[-_EDGE_LINES:] if len(body) > _EDGE_LINES * 2 else body
        edges.append(edge)
        counts.update({_edge_key(ln.text) for ln in edge})
    threshold = max(2, (len(pages) + 1) // 2)
    for edge in edges:
        for line in edge:
            key = _edge_key(line.text)
            if _PAGE_NUMBER.match(key) or (len(pages) >= 2 and counts[key] >= threshold):
                line.drop = True


def _blocks(pages: list[_Page]) -> tuple[list[Block], str | None]:
    lines = [ln for p in pages for ln in p.lines if not ln.drop]
    sizes: Counter[float] = Counter()
    for ln in lines:
        if ln.table is None:
            sizes[ln.size] += len(ln.text)
    body_size = sizes.most_common(1)[0][0] if sizes else 0.0
    body_bold = sum(len(ln.text) for ln in lines if ln.bold) > 0.5 * sum(sizes.values())
    pitch = _line_pitch(lines, body_size)
    tables = {p.number: p.tables for p in pages}

    blocks: list[Block] = []
    section: str | None = None
    first_heading: str | None = None
    para: list[str] = []
    para_page = 0
    heading: list[str] = []
    heading_size = 0.0
    emitted_tables: set[tuple[int, int]] = set()
    prev: _Line | None = None

    def flush_para() -> None:
        nonlocal para
        if para:
            text = clean_paragraph("\n".join(para))
            if text:
                blocks.append(Block(text, para_page, section, "text"))
            para = []

    def flush_heading() -> None:
        nonlocal heading, section, first_heading
        if heading:
            text = clean_inline(" ".join(heading))
            if text:
                section = text
                first_heading = first_heading or text
                blocks.append(Block(text, heading_page, section, "heading"))
            heading = []

    heading_page = 0
    for ln in lines:
        if ln.table is not None:
            key = (ln.page, ln.table)
            if key not in emitted_tables:
                flush_heading()
                flush_para()
                emitted_tables.add(key)
                rows = tables[ln.page][ln.table][1]
                blocks.append(
                    Block("\n".join(" | ".join(r) for r in rows), ln.page, section, "table")
                )
            prev = None
            continue
        gap = (
            prev is None
            or prev.page != ln.page
            or (prev.y - ln.y) > pitch * _PARAGRAPH_GAP_RATIO
            or prev.y < ln.y
        )
        is_heading = _is_heading(ln, body_size, body_bold, standalone=gap)
        if is_heading:
            # a heading that wraps continues with the same font on the next line
            if heading and not (
                abs(ln.size - heading_size) < 0.5 and not gap and ln.page == heading_page
            ):
                flush_heading()
            if not heading:
                flush_para()
                heading_size, heading_page = ln.size, ln.page
            heading.append(ln.text)
        else:
            flush_heading()
            if gap or (prev is not None and abs(ln.size - prev.size) > 0.5):
                flush_para()
            if not para:
                para_page = ln.page
            elif ln.page != para_page:
                flush_para()
                para_page = ln.page
            para.append(ln.text)
        prev = ln
    flush_heading()
    flush_para()
    return blocks, first_heading


def _is_heading(ln: _Line, body_size: float, body_bold: bool, *, standalone: bool) -> bool:
    # layout signals first (cheap), the text test only for lines that have one
    text = ln.text
    larger = bool(body_size) and ln.size >= body_size * _HEADING_SIZE_RATIO
    bolder = ln.bold and not body_bold and standalone and len(text) <= 80
    numbered = (
        standalone and len(text) <= 80 and ln.size >= body_size - 0.5 and is_numbered_heading(text)
    )
    return (larger or bolder or numbered) and looks_like_heading_text(text)


def _line_pitch(lines: list[_Line], body_size: float) -> float:
    """The usual baseline-to-baseline distance inside a body paragraph: the most common one
    (the smallest among equals; paragraph gaps only ever add space), or 1.25 x the font size
    when too few lines repeat a distance to tell."""
    gaps = Counter(
        round(a.y - b.y)
        for a, b in pairwise(lines)
        if a.page == b.page
        and a.table is None
        and b.table is None
        and 0 < a.y - b.y < 60
        and abs(a.size - body_size) < 0.5
        and abs(b.size - body_size) < 0.5
    )
    top = max(gaps.values(), default=0)
    if top < 2:
        return 1.25 * body_size if body_size > 0 else 14.0
    return float(min(g for g, c in gaps.items() if c == top))
