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

    def __post_init__(self) -> None:
        if self.kind not in BLOCK_KINDS:
            raise ValueError(f"unknown block kind {self.kind!r}")


@dataclass
class ParsedDocument:
    title: str | None
    doc_type: str  # "pdf" | "docx" | "html" | "markdown" | "text" | "json"
    page_count: int | None
    blocks: list[Block] = field(default_factory=list)

    @property
    def text(self) -> str:
        """All block text, blank-line separated (handy for tests and previews)."""
        return "\n\n".join(b.text for b in self.blocks)
