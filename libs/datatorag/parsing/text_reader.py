"""Plain text: paragraphs are separated by blank lines; short stand-alone lines that look like
headings (numbered, ALL CAPS, Title Case, or underlined with === / ---) open sections."""

from __future__ import annotations

import re

from datatorag.parsing.cleaning import clean_inline, clean_paragraph, normalise
from datatorag.parsing.headings import looks_like_heading_text
from datatorag.parsing.model import Block, ParsedDocument
from datatorag.parsing.textdecode import decode_text

_UNDERLINE = re.compile(r"^\s*(?:={3,}|-{3,})\s*$")


def parse_text(data: bytes, filename: str) -> ParsedDocument:
    return text_to_document(decode_text(data, filename), doc_type="text")


def text_to_document(text: str, *, doc_type: str) -> ParsedDocument:
    text = normalise(text).replace("\r\n", "\n").replace("\r", "\n")
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    blocks: list[Block] = []
    section: str | None = None
    for i, para in enumerate(paragraphs):
        lines = [ln for ln in para.split("\n") if ln.strip()]
        heading = None
        if (len(lines) == 2 and _UNDERLINE.match(lines[1])) or (
            len(lines) == 1 and i + 1 < len(paragraphs) and looks_like_heading_text(lines[0])
        ):
            heading, lines = lines[0], []
        elif len(lines) > 1 and looks_like_heading_text(lines[0]) and _is_list_or_body(lines[1:]):
            heading, lines = lines[0], lines[1:]  # "HEADING\nbody..." with no blank line
        if heading:
            section = clean_inline(heading)
            blocks.append(Block(section, None, section, "heading"))
        body = clean_paragraph("\n".join(ln for ln in lines if not _UNDERLINE.match(ln)))
        if body:
            blocks.append(Block(body, None, section, "text"))
    title = next((b.text for b in blocks if b.kind == "heading"), None)
    if title is None and blocks:
        title = blocks[0].text[:120]
    return ParsedDocument(title=title, doc_type=doc_type, page_count=None, blocks=blocks)


def _is_list_or_body(lines: list[str]) -> bool:
    """Lines after a candidate heading read as body text: long, or sentences, or list items."""
    first = lines[0].strip()
    return len(first) > 60 or first[-1:] in ".:;," or first[:2] in ("- ", "* ", "• ")
