"""What every format reader produces: an ordered list of blocks with page and section."""

from __future__ import annotations

from dataclasses import dataclass, field

BLOCK_KINDS = ("text", "table", "heading")


@dataclass
class Block:
    """A paragraph, table or heading. ``page`` is 1-based (None where a format has no pages);
    ``section`` is the heading the block sits under (for a heading: the heading itself)."""

    text: str
    page: int | None
    section: str | None
    kind: str = "text"  # "text" | "table" | "heading"
    # a table whose first row names its columns: the chunker repeats that row at the top of
    # every chunk the table continues into (a spreadsheet's rows mean nothing without it)
    header_row: bool = False

    def __post_init__(self) -> None:
        if self.kind not in BLOCK_KINDS:
            raise ValueError(f"unknown block kind {self.kind!r}")


@dataclass(frozen=True)
class OcrPage:
    """A page whose text came from OCR: its mean word confidence (0-100, Tesseract's scale)."""

    page: int
    confidence: float
    words: int


@dataclass
class ParsedDocument:
    title: str | None
    doc_type: str  # "pdf" | "docx" | "html" | "markdown" | "text" | "json" | "xlsx" | ...
    page_count: int | None
    blocks: list[Block] = field(default_factory=list)
    ocr: list[OcrPage] = field(default_factory=list)  # the pages read by OCR, in page order

    @property
    def text(self) -> str:
        """All block text, blank-line separated (handy for tests and previews)."""
        return "\n\n".join(b.text for b in self.blocks)
