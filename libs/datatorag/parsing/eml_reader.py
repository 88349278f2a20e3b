"""EML (a saved e-mail, RFC 5322/MIME; policy announcements): the subject is the title and the
first section, sender and date a short line under it, the body its text/plain part or else its
text/html part (read like an HTML page). Attachments are listed by name, not read."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage, MIMEPart
from email.parser import BytesParser
from pathlib import PurePosixPath

from datatorag.domain.errors import PermanentError
from datatorag.parsing.cleaning import clean_inline
from datatorag.parsing.model import Block, ParsedDocument


def parse_eml(data: bytes, filename: str) -> ParsedDocument:
    try:
        message = BytesParser(policy=policy.default).parsebytes(data)
        assert isinstance(message, EmailMessage)
        subject = clean_inline(str(message.get("subject") or ""))
        sender = clean_inline(str(message.get("from") or ""))
        date = clean_inline(str(message.get("date") or ""))
        body = message.get_body(preferencelist=("plain", "html"))
        attachments = [
            clean_inline(part.get_filename() or "unnamed") for part in message.iter_attachments()
        ]
    except Exception as exc:  # noqa: BLE001 - header and MIME defects surface as many types
        raise PermanentError(
            f"{filename!r} is not a readable e-mail message ({type(exc).__name__}: {exc})",
            code="eml_invalid",
        ) from None
    title = subject or PurePosixPath(filename).stem
    blocks = [Block(title, None, title, "heading")]
    byline = "; ".join(p for p in (f"From: {sender}" if sender else "",
                                   f"Date: {date}" if date else "") if p)  # fmt: skip
    if byline:
        blocks.append(Block(byline, None, title, "text"))
    if body is not None:
        blocks.extend(_body_blocks(body, filename, title))
    if attachments:
        blocks.append(Block("Attachments: " + ", ".join(attachments), None, title, "text"))
    return ParsedDocument(title=title, doc_type="eml", page_count=None, blocks=blocks)


def _body_blocks(part: MIMEPart, filename: str, title: str) -> list[Block]:
    try:
        content = part.get_content()
    except (LookupError, UnicodeError):  # an unknown or wrong declared charset
        raw = part.get_payload(decode=True)
        content = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else ""
    if not isinstance(content, str):
        return []
    if part.get_content_subtype() == "html":
        from datatorag.parsing.html_reader import parse_html

        inner = parse_html(content.encode("utf-8"), filename).blocks
    else:
        from datatorag.parsing.text_reader import text_to_document

        inner = text_to_document(content, doc_type="eml").blocks
    # the body's own headings open sections; what comes before them sits under the subject
    return [Block(b.text, None, b.section or title, b.kind) for b in inner]
