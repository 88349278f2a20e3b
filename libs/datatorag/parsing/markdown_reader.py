"""Markdown with markdown-it-py (CommonMark + tables): headings open sections, YAML front matter
gives the title, inline markup is reduced to its text."""

from __future__ import annotations

import re

import yaml
from markdown_it import MarkdownIt
from markdown_it.token import Token

from datatorag.parsing.cleaning import clean_inline, clean_paragraph, normalise
from datatorag.parsing.model import Block, ParsedDocument
from datatorag.parsing.textdecode import decode_text

_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.DOTALL)
_MD = MarkdownIt("commonmark").enable(["table", "strikethrough"])


def parse_markdown(data: bytes, filename: str) -> ParsedDocument:
    text = normalise(decode_text(data, filename))
    meta_title = None
    match = _FRONT_MATTER.match(text)
    if match:
        meta_title = _front_matter_title(match.group(1))
        text = text[match.end() :]
    blocks = _blocks(_MD.parse(text))
    title = (
        meta_title
        or next((b.text for b in blocks if b.kind == "heading"), None)
        or next((b.text[:120] for b in blocks), None)
    )
    return ParsedDocument(title=title, doc_type="markdown", page_count=None, blocks=blocks)


def _front_matter_title(raw: str) -> str | None:
    try:
        meta = yaml.safe_load(raw)
    except yaml.YAMLError:
        return None  # not front matter after all; the text still parses
    if isinstance(meta, dict):
        for key in ("title", "Title", "name"):
            if isinstance(meta.get(key), str | int | float) and str(meta[key]).strip():
                return clean_inline(str(meta[key]))
    return None


def _blocks(tokens: list[Token]) -> list[Block]:
    blocks: list[Block] = []
    section: str | None = None
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.type == "heading_open":
            text = clean_inline(_inline_text(tokens[i + 1]))
            if text:
                section = text
                blocks.append(Block(text, None, section, "heading"))
            i += 3
            continue
        if tok.type == "table_open":
            rows, i = _table(tokens, i)
            if rows:
                blocks.append(Block("\n".join(" | ".join(r) for r in rows), None, section, "table"))
            continue
        if tok.type == "inline":
            text = clean_paragraph(_inline_text(tok))
            if text:
                blocks.append(Block(text, None, section, "text"))
        elif tok.type in ("fence", "code_block"):
            text = tok.content.strip()
            if text:
                blocks.append(Block(text, None, section, "text"))
        elif tok.type == "html_block":
            text = clean_paragraph(re.sub(r"<[^>]+>", " ", tok.content))
            if text:
                blocks.append(Block(text, None, section, "text"))
        i += 1
    return blocks


def _table(tokens: list[Token], i: int) -> tuple[list[list[str]], int]:
    rows: list[list[str]] = []
    row: list[str] = []
    while i < len(tokens) and tokens[i].type != "table_close":
        tok = tokens[i]
        if tok.type == "tr_open":
            row = []
        elif tok.type == "inline":
            row.append(clean_inline(_inline_text(tok)))
        elif tok.type == "tr_close" and any(row):
            rows.append(row)
        i += 1
    return rows, i + 1


def _inline_text(tok: Token) -> str:
    out = []
    for child in tok.children or []:
        if child.type in ("text", "code_inline", "html_inline"):
            out.append(child.content if child.type != "html_inline" else "")
        elif child.type == "softbreak" or child.type == "hardbreak":
            out.append("\n")
        elif child.type == "image":
            out.append(child.content or "")  # alt text
    return "".join(out)
