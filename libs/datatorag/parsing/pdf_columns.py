"""Two-column PDF pages in column order.

PDFium joins text that shares a baseline into one line, so a page whose generator wrote both
columns row by row comes out as "left line 1   right line 1". Its text rectangles do break at
the gutter, though: the rectangles are merged back into line pieces (words of one line that sit
close together), and a gutter is a vertical band in the middle of the text that almost no piece
crosses while pieces stand side by side on both sides of it, and both columns are full lines of
text (not the short cells of a borderless table). Such a page is read as: what spans the gutter
(a title, a full-width paragraph) in place, and between two of those the left column top to
bottom, then the right column.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from datatorag.parsing.cleaning import clean_inline
from datatorag.parsing.layout import Line

_MIN_PIECES = 8
_MIN_SIDE_BY_SIDE = 4  # rows with a piece on each side of the gutter
_MIN_GUTTER = 6.0  # PDF units (1/12 inch)
_BIN = 2.0
_COLUMN_FILL = 0.55  # a column's median line spans at least this share of the column
_Rect = tuple[float, float, float, float]  # left, bottom, right, top


Bold = Callable[[Any, int], bool]


def column_lines(
    textpage: pdfium.PdfTextPage, lines: list[Line], page_no: int, bold: Bold
) -> list[Line] | None:
    """The page's lines in column order, or None when the page is not laid out in two columns.
    ``bold(raw, char) -> bool`` is the PDF reader's weight test."""
    if len(lines) < _MIN_PIECES // 2:
        return None
    n = textpage.count_rects()
    if n < _MIN_PIECES:
        return None
    # the cheap test first: about one rectangle per line, and hardly any line starting mid-page
    # (a centred page number or title may), is one column
    lo = min(ln.x for ln in lines)
    indented = sum(1 for ln in lines if ln.x - lo >= 100)
    if n <= 1.2 * len(lines) and indented < _MIN_SIDE_BY_SIDE:
        return None
    pieces = _pieces([tuple(textpage.get_rect(i)) for i in range(n)])
    if len(pieces) < _MIN_PIECES:
        return None
    gutter = _gutter(pieces)
    if gutter is None:
        return None
    out = []
    for piece in _column_order(pieces, gutter):
        line = _line(textpage, piece, page_no, bold)
        if line is not None:
            out.append(line)
    return out


def _pieces(rects: list[_Rect]) -> list[_Rect]:
    """Rectangles of one text row merged while the gap between them is word spacing."""
    rows: list[list[_Rect]] = []
    for rect in sorted(rects, key=lambda r: (-(r[1] + r[3]) / 2, r[0])):
        mid, height = (rect[1] + rect[3]) / 2, rect[3] - rect[1]
        if rows:
            last = rows[-1][0]
            if abs((last[1] + last[3]) / 2 - mid) <= 0.4 * max(height, last[3] - last[1]):
                rows[-1].append(rect)
                continue
        rows.append([rect])
    pieces: list[_Rect] = []
    for row in rows:
        row.sort(key=lambda r: r[0])
        height = max(r[3] - r[1] for r in row)
        cur = list(row[0])
        for r in row[1:]:
            if r[0] - cur[2] <= 1.5 * height:
                cur = [cur[0], min(cur[1], r[1]), max(cur[2], r[2]), max(cur[3], r[3])]
            else:
                pieces.append((cur[0], cur[1], cur[2], cur[3]))
                cur = list(r)
        pieces.append((cur[0], cur[1], cur[2], cur[3]))
    return pieces


def _gutter(pieces: list[_Rect]) -> float | None:
    lo, hi = min(p[0] for p in pieces), max(p[2] for p in pieces)
    width = hi - lo
    if width < 100:
        return None
    bins = int(width / _BIN) + 1
    cover = [0] * bins
    for p in pieces:
        for b in range(int((p[0] - lo) / _BIN), min(bins, int((p[2] - lo) / _BIN) + 1)):
            cover[b] += 1
    allowed = max(2, len(pieces) // 8)  # titles and full-width lines cross it
    best = (0, 0)
    start: int | None = None
    first, last = int(0.25 * bins), int(0.75 * bins)
    for b in range(first, last + 2):
        if b <= last and cover[b] <= allowed:
            start = b if start is None else start
        elif start is not None:
            if b - start > best[1] - best[0]:
                best = (start, b)
            start = None
    if (best[1] - best[0]) * _BIN < _MIN_GUTTER:
        return None
    gutter = lo + (best[0] + best[1]) / 2 * _BIN
    left = [p for p in pieces if p[2] < gutter]
    right = [p for p in pieces if p[0] > gutter]
    side_by_side = sum(
        1
        for a in left
        if any(min(a[3], b[3]) - max(a[1], b[1]) > 0.5 * (a[3] - a[1]) for b in right)
    )
    if side_by_side < _MIN_SIDE_BY_SIDE:
        return None
    if not (_full(left, lo, gutter) and _full(right, gutter, hi)):
        return None
    return gutter


def _beside(a: _Rect, b: _Rect) -> bool:
    """Two pieces on one text row: they overlap in height by more than half of ``a``."""
    return min(a[3], b[3]) - max(a[1], b[1]) > 0.5 * (a[3] - a[1])


def _full(pieces: list[_Rect], x0: float, x1: float) -> bool:
    widths = sorted(p[2] - p[0] for p in pieces)
    return len(widths) >= 3 and widths[len(widths) // 2] >= _COLUMN_FILL * (x1 - x0)


def _column_order(pieces: list[_Rect], gutter: float) -> list[_Rect]:
    out: list[_Rect] = []
    left: list[_Rect] = []
    right: list[_Rect] = []
    for p in sorted(pieces, key=lambda r: (-r[3], r[0])):
        if p[0] < gutter < p[2]:  # spans both columns: what came before it is read first
            out += left + right
            left, right = [], []
            out.append(p)
        elif p[2] <= gutter:
            left.append(p)
        else:
            right.append(p)
    return out + left + right


_X, _Y = ctypes.c_double(), ctypes.c_double()


def _line(textpage: pdfium.PdfTextPage, piece: _Rect, page_no: int, bold: Bold) -> Line | None:
    left, bottom, right, top = piece
    text = clean_inline(textpage.get_text_bounded(left=left, bottom=bottom, right=right, top=top))
    if not text:
        return None
    raw = textpage.raw
    height = top - bottom
    char = pdfium_c.FPDFText_GetCharIndexAtPos(
        raw, left + min(2.0, (right - left) / 2), (top + bottom) / 2, height, height / 2
    )
    if char < 0:
        return Line(text, page_no, left, bottom, round(height, 1), False)
    pdfium_c.FPDFText_GetCharOrigin(raw, char, _X, _Y)
    size = round(pdfium_c.FPDFText_GetFontSize(raw, char), 1)
    return Line(text, page_no, left, _Y.value, size, bold(raw, char))
