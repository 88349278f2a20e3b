"""Lines with position and font -> blocks: the layout logic shared by the PDF text layer and OCR.

Paragraphs are told apart by the gap between baselines (against the usual line pitch), headings
by size, weight or numbering; lines repeated at the top or bottom of most pages (running headers,
footers) and page numbers are dropped. Coordinates are PDF units with y growing upwards.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from itertools import pairwise

from datatorag.parsing.cleaning import clean_inline, clean_paragraph
from datatorag.parsing.headings import is_numbered_heading, looks_like_heading_text
from datatorag.parsing.model import Block

_HEADING_SIZE_RATIO = 1.15
_PARAGRAPH_GAP_RATIO = 1.45
_EDGE_LINES = 3  # lines at the top/bottom of a page examined for running headers/footers
_PAGE_NUMBER = re.compile(
    r"^(?:page\s*)?#(?:\s*(?:of|/)\s*#)?$|^[-\u2013\u2014]\s*#\s*[-\u2013\u2014]$|^[ivxlc]{1,6}$"
)


@dataclass
class Line:
    text: str
    page: int
    x: float
    y: float  # baseline, PDF units, growing upwards
    size: float
    bold: bool
    drop: bool = False
    table: int | None = None  # index into Page.tables when the line sits inside a table


@dataclass
class Page:
    number: int
    lines: list[Line]
    tables: list[tuple[tuple[float, float, float, float], list[list[str]]]]


def _edge_key(text: str) -> str:
    return re.sub(r"\d+", "#", text.lower()).strip()


def drop_running_lines(pages: list[Page]) -> None:
    """Drop page-number lines, and header/footer lines repeated on most pages."""
    counts: Counter[str] = Counter()
    edges: list[list[Line]] = []
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


def page_blocks(pages: list[Page]) -> tuple[list[Block], str | None]:
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
    prev: Line | None = None

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


def _is_heading(ln: Line, body_size: float, body_bold: bool, *, standalone: bool) -> bool:
    # layout signals first (cheap), the text test only for lines that have one
    text = ln.text
    larger = bool(body_size) and ln.size >= body_size * _HEADING_SIZE_RATIO
    bolder = ln.bold and not body_bold and standalone and len(text) <= 80
    numbered = (
        standalone and len(text) <= 80 and ln.size >= body_size - 0.5 and is_numbered_heading(text)
    )
    return (larger or bolder or numbered) and looks_like_heading_text(text)


def _line_pitch(lines: list[Line], body_size: float) -> float:
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
