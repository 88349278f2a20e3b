"""PPTX with python-pptx: one page per slide, the slide's title as its section (a slide without
one is "Slide n"); text frames one block per paragraph (a bullet), tables with their header row,
group shapes opened, speaker notes kept. Shapes are read top to bottom, then left to right: the
order in the file is the drawing order, not the reading order."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Any

from datatorag.domain.errors import PermanentError
from datatorag.parsing import limits
from datatorag.parsing.cleaning import clean_inline, clean_paragraph
from datatorag.parsing.model import Block, ParsedDocument
from datatorag.parsing.tables import table_text, trim_row


def parse_pptx(data: bytes, filename: str) -> ParsedDocument:
    from pptx import Presentation

    used = limits.current()
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            used.check_archive(archive, ("ppt/",))
        deck = Presentation(io.BytesIO(data))
        slides = list(deck.slides)
    except PermanentError:
        raise
    except Exception as exc:  # noqa: BLE001 - zip, XML and package errors all mean a broken file
        raise PermanentError(
            f"{filename!r} is not a readable PPTX presentation ({type(exc).__name__}: {exc})",
            code="pptx_corrupt",
        ) from None
    used.check_pages(len(slides))
    blocks: list[Block] = []
    first_title: str | None = None
    for n, slide in enumerate(slides, 1):
        title_shape = slide.shapes.title
        title = clean_inline(title_shape.text_frame.text) if title_shape is not None else ""
        first_title = first_title or title or None
        section = title or f"Slide {n}"
        blocks.append(Block(section, n, section, "heading"))
        for shape in _reading_order(slide.shapes):
            if title_shape is not None and shape.shape_id == title_shape.shape_id:
                continue
            if getattr(shape, "has_table", False) and shape.has_table:
                rows = [
                    r for r in (trim_row([clean_inline(c.text) for c in row.cells])
                                for row in shape.table.rows) if r
                ]  # fmt: skip
                used.charge_cells(sum(len(r) for r in rows))
                if rows:
                    blocks.append(Block(table_text(rows), n, section, "table", header_row=True))
            elif getattr(shape, "has_text_frame", False) and shape.has_text_frame:
                for para in shape.text_frame.paragraphs:
                    text = clean_paragraph(para.text)
                    if text:
                        blocks.append(Block(text, n, section, "text"))
        if slide.has_notes_slide:
            notes = clean_paragraph(slide.notes_slide.notes_text_frame.text or "")
            if notes:
                blocks.append(Block(notes, n, section, "text"))
    core = clean_inline(deck.core_properties.title or "")
    title_out = core or first_title or PurePosixPath(filename).stem
    return ParsedDocument(title=title_out, doc_type="pptx", page_count=len(slides), blocks=blocks)


def _reading_order(shapes: Any) -> Iterator[Any]:
    """Shapes top to bottom (rows of similar top), then left to right; groups opened in place."""
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    def key(shape: Any) -> tuple[int, int]:
        # 1/4 inch bands: shapes side by side on a slide rarely share an exact top
        return (int(shape.top or 0) // 228_600, int(shape.left or 0))

    for shape in sorted(shapes, key=key):
        if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
            yield from _reading_order(shape.shapes)
        else:
            yield shape
