"""HTML with BeautifulSoup + lxml: boilerplate (script, style, nav, header, footer, aside, forms)
dropped, h1-h6 open sections, tables become pipe-separated rows."""

from __future__ import annotations

from bs4 import BeautifulSoup, Tag
from bs4.element import NavigableString

from datatorag.parsing.cleaning import clean_inline, clean_paragraph
from datatorag.parsing.model import Block, ParsedDocument
from datatorag.parsing.textdecode import decode_html

_DROP = (
    "script",
    "style",
    "noscript",
    "template",
    "nav",
    "header",
    "footer",
    "aside",
    "form",
    "iframe",
    "svg",
    "canvas",
    "button",
    "select",
    "head",
)
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
_LEAF_BLOCKS = {
    "p",
    "li",
    "pre",
    "blockquote",
    "dd",
    "dt",
    "figcaption",
    "caption",
    "address",
    "summary",
    "td",
    "th",
}
_BREAKS = {
    "br",
    "p",
    "div",
    "li",
    "tr",
    "td",
    "th",
    "dd",
    "dt",
    "blockquote",
    "pre",
    "section",
    "article",
    "table",
    "ul",
    "ol",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
}
_CONTAINERS = {
    "html",
    "body",
    "main",
    "article",
    "section",
    "div",
    "ul",
    "ol",
    "dl",
    "figure",
    "details",
    "center",
    "fieldset",
    "span",
    "font",
}


def parse_html(data: bytes, filename: str) -> ParsedDocument:
    soup = BeautifulSoup(decode_html(data, filename), "lxml")
    title_tag = soup.find("title")
    title = clean_inline(title_tag.get_text(" ")) if title_tag else ""
    for tag in soup.find_all(_DROP):
        tag.decompose()
    walker = _Walker()
    root = soup.body or soup
    try:
        walker.walk(root)
        walker.flush()
        blocks = walker.blocks
    except RecursionError:
        # absurdly deep markup: keep the text, one paragraph per line, without structure
        lines = (clean_paragraph(line) for line in root.get_text("\n").split("\n"))
        blocks = [Block(line, None, None, "text") for line in lines if line]
    first_heading = next((b.text for b in blocks if b.kind == "heading"), None)
    if title and first_heading and title != first_heading and title.startswith(first_heading):
        title = first_heading  # "Expense Policy | Intranet" -> the page's own heading
    best: str | None = title or first_heading or next((b.text for b in blocks), None)
    return ParsedDocument(title=best, doc_type="html", page_count=None, blocks=blocks)


class _Walker:
    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self.section: str | None = None
        self.loose: list[str] = []  # text directly inside containers (no <p>)

    def flush(self) -> None:
        text = clean_paragraph("".join(self.loose))
        if text:
            self.blocks.append(Block(text, None, self.section, "text"))
        self.loose = []

    def walk(self, node: Tag) -> None:
        for child in node.children:
            if isinstance(child, NavigableString):
                if type(child) is NavigableString:  # not comments/doctype/CDATA
                    self.loose.append(str(child))
                continue
            if not isinstance(child, Tag):
                continue
            name = child.name.lower()
            if name in _HEADINGS:
                self.flush()
                text = clean_inline(_text(child))
                if text:
                    self.section = text
                    self.blocks.append(Block(text, None, text, "heading"))
            elif name == "table":
                self.flush()
                self._table(child)
            elif name in _LEAF_BLOCKS and not child.find(["table", *_HEADINGS]):
                self.flush()
                text = clean_paragraph(_text(child))
                if text:
                    self.blocks.append(Block(text, None, self.section, "text"))
            elif name in _CONTAINERS or name in _LEAF_BLOCKS:
                if name not in ("span", "font"):
                    self.flush()
                self.walk(child)
                if name not in ("span", "font"):
                    self.flush()
            else:  # inline markup (a, b, em, code, ...) and unknown tags: keep the text flowing
                text = _text(child)
                if text:
                    self.loose.append(text)

    def _table(self, table: Tag) -> None:
        rows = []
        for tr in table.find_all("tr"):
            if tr.find_parent("table") is not table:
                continue  # rows of a nested table are read with that table's cell
            cells = [clean_inline(_text(td)) for td in tr.find_all(["td", "th"], recursive=False)]
            if any(cells):
                rows.append(cells)
        if rows:
            self.blocks.append(
                Block("\n".join(" | ".join(r) for r in rows), None, self.section, "table")
            )


def _text(node: Tag) -> str:
    """The text of ``node`` as a browser lays it out: inline markup joins without spaces
    ("<b>a</b>," -> "a,"), block-level elements and <br> break lines. (bs4's ``get_text`` has
    no notion of blocks, and inserting separators into the tree costs quadratic time on deep
    markup.)"""
    out: list[str] = []
    _collect(node, out)
    return "".join(out)


def _collect(node: Tag, out: list[str]) -> None:
    for child in node.children:
        if isinstance(child, NavigableString):
            if type(child) is NavigableString:
                out.append(str(child))
        elif isinstance(child, Tag):
            block = child.name in _BREAKS
            if block:
                out.append("\n")
            _collect(child, out)
            if block:
                out.append("\n")
