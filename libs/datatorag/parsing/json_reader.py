"""JSON records of HR APIs (Workday RaaS ``Report_Entry``, Rippling/REST ``data``/``results``...):
an object or a list of objects, each rendered as readable text. A record's title-like field
(``title``, ``name``, ``Document_Title``...) opens its section; long text fields (``body``,
``description``...) become paragraphs (HTML in them is reduced to text); short fields become
``Label: value`` lines, nested objects as ``Parent > Child: value``."""

from __future__ import annotations

import json
import re
from pathlib import PurePosixPath
from typing import Any

from datatorag.domain.errors import PermanentError
from datatorag.parsing.cleaning import clean_inline, clean_paragraph
from datatorag.parsing.model import Block, ParsedDocument
from datatorag.parsing.textdecode import decode_text

_WRAPPERS = (
    "reportentry",
    "data",
    "results",
    "items",
    "records",
    "documents",
    "entries",
    "value",
    "policies",
    "rows",
)
_TITLE_KEYS = (
    "title",
    "documenttitle",
    "document_title",
    "name",
    "documentname",
    "policyname",
    "policytitle",
    "subject",
    "heading",
    "displayname",
    "label",
)
_LONG_KEYS = (
    "body",
    "content",
    "text",
    "description",
    "details",
    "summary",
    "html",
    "policytext",
    "policybody",
    "message",
    "notes",
)
_LONG_CHARS = 160
_TAG = re.compile(r"<[a-zA-Z/!][^>]*>")


def parse_json(data: bytes, filename: str) -> ParsedDocument:
    text = decode_text(data, filename)
    try:
        value = json.loads(text)
    except RecursionError:
        raise PermanentError(
            f"{filename!r}: JSON nested too deeply to read", code="json_invalid"
        ) from None
    except json.JSONDecodeError as exc:
        raise PermanentError(
            f"{filename!r} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno} "
            f"(character {exc.pos})",
            code="json_invalid",
        ) from None
    records, wrapper = _records(value, filename)
    try:
        return _document(records, wrapper, filename)
    except RecursionError:
        raise PermanentError(
            f"{filename!r}: JSON nested too deeply to render", code="json_invalid"
        ) from None


def _document(records: list[Any], wrapper: dict[str, Any] | None, filename: str) -> ParsedDocument:
    blocks: list[Block] = []
    titles: list[str] = []
    for n, record in enumerate(records, 1):
        title = _title_of(record) if isinstance(record, dict) else None
        section = title or (f"Record {n}" if len(records) > 1 else None)
        if title:
            titles.append(title)
        if section:
            blocks.append(Block(section, None, section, "heading"))
        if isinstance(record, dict):
            lines: list[str] = []
            paragraphs: list[str] = []
            _render(record, (), lines, paragraphs, skip_title=title)
            if lines:
                blocks.append(Block("\n".join(lines), None, section, "text"))
            blocks.extend(Block(p, None, section, "text") for p in paragraphs)
        else:
            scalar = _scalar(record)
            if scalar:
                blocks.append(Block(scalar, None, section, "text"))
    doc_title = (_title_of(wrapper) if wrapper else None) or (
        titles[0] if len(records) == 1 and titles else None
    )
    doc_title = doc_title or PurePosixPath(filename).stem or None
    return ParsedDocument(title=doc_title, doc_type="json", page_count=None, blocks=blocks)


# The envelope our HR API connectors write around one record (datatorag.connectors.http_api).
RECORD_SCHEMA = "datatorag.record/v1"


def _records(value: Any, filename: str) -> tuple[list[Any], dict[str, Any] | None]:
    if (
        isinstance(value, dict)
        and value.get("schema") == RECORD_SCHEMA
        and isinstance(value.get("record"), dict)
    ):
        # Only the record is content; the envelope names its title.
        record = dict(value["record"])
        if value.get("title") and not _title_of(record):
            record = {"title": value["title"], **record}
        return [record], None
    if isinstance(value, list):
        return value, None
    if isinstance(value, dict):
        for key, inner in value.items():
            if (
                _norm(key) in _WRAPPERS
                and isinstance(inner, list)
                and any(isinstance(r, dict) for r in inner)
            ):
                return inner, value
        return [value], None
    raise PermanentError(
        f"{filename!r}: expected a JSON object or a list of objects, got a {type(value).__name__}",
        code="json_invalid",
    )


def _norm(key: str) -> str:
    return re.sub(r"[^a-z0-9]", "", key.lower())


def _title_of(record: dict[str, Any]) -> str | None:
    by_norm = {_norm(k): v for k, v in record.items() if isinstance(k, str)}
    for key in _TITLE_KEYS:
        v = by_norm.get(_norm(key))
        if isinstance(v, str) and v.strip() and len(v) <= 300:
            return clean_inline(v)
    return None


def _label(key: str) -> str:
    key = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", key)  # camelCase
    key = re.sub(r"[_\-.]+", " ", key).strip()
    return key[:1].upper() + key[1:]


def _scalar(value: Any) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(value)
    if _TAG.search(text):
        from bs4 import BeautifulSoup

        text = BeautifulSoup(text, "lxml").get_text(" ")
    return text


def _render(
    value: Any,
    path: tuple[str, ...],
    lines: list[str],
    paragraphs: list[str],
    *,
    skip_title: str | None = None,
) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            if (
                not path
                and skip_title is not None
                and isinstance(inner, str)
                and clean_inline(inner) == skip_title
                and _norm(str(key)) in map(_norm, _TITLE_KEYS)
            ):
                continue
            _render(inner, (*path, _label(str(key))), lines, paragraphs)
        return
    label = " > ".join(path)
    if isinstance(value, list):
        if all(not isinstance(v, dict | list) for v in value):
            items = [clean_inline(_scalar(v)) for v in value]
            items = [i for i in items if i]
            if items:
                lines.append(f"{label}: {', '.join(items)}")
            return
        for n, inner in enumerate(value, 1):
            _render(inner, (*path[:-1], f"{path[-1] if path else 'Item'} {n}"), lines, paragraphs)
        return
    text = _scalar(value)
    if not text.strip():
        return
    last = _norm(path[-1]) if path else ""
    if len(text) > _LONG_CHARS or last in _LONG_KEYS or "\n" in text.strip():
        para = clean_paragraph(text)
        if para:
            paragraphs.append(
                f"{label}: {para}" if len(path) > 1 or last not in _LONG_KEYS else para
            )
    else:
        lines.append(f"{label}: {clean_inline(text)}")
