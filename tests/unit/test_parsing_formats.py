"""DOCX, HTML, Markdown, plain text and HR JSON records."""

from __future__ import annotations

import json

from datatorag.parsing import Block, ParsedDocument, parse_document
from datatorag.parsing.cleaning import clean_paragraph
from tests.fixtures import documents as docs

TABLE_TEXT = "\n".join(" | ".join(r) for r in docs.TABLE_ROWS)


def kinds(doc: ParsedDocument) -> list[tuple[str, str | None]]:
    return [(b.kind, b.section) for b in doc.blocks]


def test_docx_headings_tables_and_title() -> None:
    doc = parse_document(docs.docx_document(), filename="remote.docx")
    assert doc.doc_type == "docx" and doc.page_count is None
    assert doc.title == "Remote Work Policy"  # the Title-style paragraph
    headings = [b.text for b in doc.blocks if b.kind == "heading"]
    assert headings == ["Remote Work Policy", "Part 1 Details", "Part 2 Details", "Part 3 Details"]
    table = [b for b in doc.blocks if b.kind == "table"]
    assert len(table) == 1 and table[0].text == TABLE_TEXT and table[0].section == "Part 3 Details"
    body = [b for b in doc.blocks if b.kind == "text"]
    assert len(body) == 6 and body[0].section == "Part 1 Details"
    assert body[0].text == docs.paragraphs(501, 2, 3)[0]


def test_docx_core_title_wins() -> None:
    doc = parse_document(docs.docx_document(core_title="Official Title"), filename="r.docx")
    assert doc.title == "Official Title"


def test_docx_detected_by_content_not_extension() -> None:
    doc = parse_document(docs.docx_document(), filename="download", content_type=None)
    assert doc.doc_type == "docx"


def test_html_drops_boilerplate_and_keeps_structure() -> None:
    doc = parse_document(docs.html_document(), filename="expenses.html")
    assert doc.doc_type == "html"
    assert doc.title == "Expense Policy"
    text = doc.text
    for noise in ("tracker", "font-family", "HR portal menu", "Copyright footer"):
        assert noise not in text
    assert kinds(doc) == [
        ("heading", "Expense Policy"),
        ("text", "Expense Policy"),
        ("heading", "Receipts"),
        ("text", "Receipts"),
        ("text", "Receipts"),
        ("text", "Receipts"),
        ("heading", "Plan Costs"),
        ("table", "Plan Costs"),
    ]
    assert doc.blocks[4].text == "Keep every receipt over $25."
    assert doc.blocks[-1].text == TABLE_TEXT


def test_html_inline_markup_joins_like_a_browser() -> None:
    doc = parse_document(
        b"<html><body><p>Pay <b>within</b>, not after<br>the deadline.</p>"
        b"<div>Loose <i>div</i> text</div></body></html>",
        filename="a.htm",
    )
    assert [b.text for b in doc.blocks] == ["Pay within, not after the deadline.", "Loose div text"]
    assert doc.title == "Pay within, not after the deadline."  # no <title>, no heading


def test_markdown_front_matter_sections_and_table() -> None:
    doc = parse_document(docs.markdown_document(), filename="parental.md")
    assert doc.doc_type == "markdown"
    assert doc.title == "Parental Leave"  # front matter beats the first heading
    assert kinds(doc) == [
        ("heading", "Parental Leave Overview"),
        ("text", "Parental Leave Overview"),
        ("heading", "Eligibility"),
        ("text", "Eligibility"),
        ("text", "Eligibility"),
        ("text", "Eligibility"),
        ("heading", "Plans"),
        ("table", "Plans"),
    ]
    assert doc.blocks[3].text == "Employees with six months of service."  # ** removed
    assert doc.blocks[-1].text == TABLE_TEXT
    assert "---" not in doc.text and "owner:" not in doc.text


def test_markdown_without_front_matter_uses_first_heading() -> None:
    doc = parse_document(docs.markdown_document(front_matter=False), filename="p.markdown")
    assert doc.title == "Parental Leave Overview"


def test_plain_text_paragraphs_and_headings() -> None:
    text = (
        b"HOLIDAY POLICY\n\nThe office closes on public holidays. Staff who work\nreceive a day "
        b"in lieu.\n\nFloating Holidays\n=================\n\nTwo floating days per year.\n"
    )
    doc = parse_document(text, filename="holidays.txt")
    assert doc.doc_type == "text"
    assert doc.title == "HOLIDAY POLICY"
    assert [(b.kind, b.text) for b in doc.blocks] == [
        ("heading", "HOLIDAY POLICY"),
        ("text", "The office closes on public holidays. Staff who work receive a day in lieu."),
        ("heading", "Floating Holidays"),
        ("text", "Two floating days per year."),
    ]
    assert doc.blocks[-1].section == "Floating Holidays"


def test_text_encodings_bom_and_utf16() -> None:
    body = "Leave Policy\n\nEmployees accrue 1.5 days per month.\n"
    for data in (
        body.encode(),
        b"\xef\xbb\xbf" + body.encode(),
        docs.utf16_text(body),
        body.encode("utf-16-be").join([b"\xfe\xff", b""]),
    ):
        doc = parse_document(data, filename="leave.txt")
        assert [b.text for b in doc.blocks] == [
            "Leave Policy",
            "Employees accrue 1.5 days per month.",
        ]


def test_unicode_is_normalised() -> None:
    doc = parse_document(
        "Of\ufb01ce \ufb02oor\u00a0plan, \uff21\uff22\uff23 team.\u200b".encode(), filename="n.txt"
    )
    assert doc.blocks[0].text == "Office floor plan, ABC team."


def test_hr_json_records() -> None:
    doc = parse_document(
        docs.hr_json_records(), filename="workday-policies.json", content_type="application/json"
    )
    assert doc.doc_type == "json"
    assert doc.title == "workday-policies"  # several records: the file's name
    assert kinds(doc) == [
        ("heading", "Bereavement Leave"),
        ("text", "Bereavement Leave"),
        ("text", "Bereavement Leave"),
        ("heading", "Jury Duty"),
        ("text", "Jury Duty"),
        ("text", "Jury Duty"),
    ]
    fields = doc.blocks[1].text.split("\n")
    assert "Effective Date: 2024-03-01" in fields
    assert "Owner > Email: people@example.com" in fields
    assert "Tags: leave, paid" in fields
    assert doc.blocks[2].text.startswith("Employees may take up to five paid days")


def test_hr_json_single_record_title_and_html_fields() -> None:
    record = {
        "name": "Holiday Calendar 2025",
        "isActive": True,
        "description": "<p>The office is <b>closed</b> on these days.</p>",
        "events": [{"date": "2025-01-01", "label": "New Year"}],
    }
    doc = parse_document(json.dumps([record]).encode(), filename="r.json")
    assert doc.title == "Holiday Calendar 2025"
    text = doc.text
    assert "Is Active: yes" in text
    assert "Events 1 > Date: 2025-01-01" in text
    assert "The office is closed on these days." in text and "<p>" not in text


def test_json_detected_by_sniffing() -> None:
    doc = parse_document(b'  {"title": "Dress Code", "body": "Business casual."}', filename="blob")
    assert doc.doc_type == "json" and doc.title == "Dress Code"


def test_cleaning_dehyphenates_only_line_breaks() -> None:
    assert (
        clean_paragraph("employ-\nees and well-known\n  rules") == "employees and well-known rules"
    )
    assert clean_paragraph("Section A-\nB") == "Section A- B"  # capital: a real hyphen


def test_block_kind_is_checked() -> None:
    import pytest

    with pytest.raises(ValueError):
        Block("x", None, None, "image")


def test_connector_record_envelope_yields_only_the_record() -> None:
    import json

    from datatorag.parsing import parse_document

    envelope = {
        "schema": "datatorag.record/v1",
        "system": "rippling",
        "collection": "documents",
        "id": "D-7",
        "title": "Travel Policy",
        "record": {"Effective_Date": "2025-01-01", "Body": "Book travel through the portal."},
    }
    doc = parse_document(json.dumps(envelope).encode(), filename="rippling/documents/D-7.json")
    text = "\n".join(b.text for b in doc.blocks)
    assert doc.title == "Travel Policy"
    assert "Book travel through the portal." in text and "Effective Date: 2025-01-01" in text
    assert "datatorag.record/v1" not in text and "rippling" not in text
