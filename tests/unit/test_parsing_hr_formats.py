"""The formats HR teams keep: XLSX and CSV (each sheet a table whose header row is kept in every
chunk), PPTX (slide titles as sections), EML (policy announcements), and two-column PDF pages read
in column order. Every document is generated here with the format's own library."""

from __future__ import annotations

import csv
import io
import zipfile

import pytest

from datatorag.chunking import chunk_document, load_chunk_tokenizer
from datatorag.domain.errors import PermanentError
from datatorag.parsing import ParseLimits, parse_document
from tests.fixtures import documents as docs
from tests.fixtures import formats, hostile

HEADER_LINE = " | ".join(formats.BENEFIT_HEADER)


@pytest.fixture(scope="module")
def tok():
    return load_chunk_tokenizer()


# ---- XLSX ---------------------------------------------------------------------------------------


def test_each_sheet_is_a_section_with_one_table() -> None:
    doc = parse_document(formats.xlsx_workbook(), filename="benefits.xlsx")
    assert doc.doc_type == "xlsx" and doc.title == "Benefits 2025"
    assert [(b.kind, b.section) for b in doc.blocks] == [
        ("heading", "Medical plans"),
        ("table", "Medical plans"),
        ("heading", "Holidays"),
        ("table", "Holidays"),
    ]
    plans, holidays = doc.blocks[1], doc.blocks[3]
    assert plans.header_row and holidays.header_row
    rows = plans.text.split("\n")
    assert rows[0] == HEADER_LINE
    assert rows[1] == "Bronze plan 1 | 40 | 3000 | 10%"  # integers stay integers
    # the blank row is skipped; a formula written without a cached value shows no formula text
    assert rows[-1] == "Total premium" and "=SUM" not in plans.text
    assert holidays.text.split("\n")[1] == "2025-01-01 | New Year's Day"  # a date, not midnight


def test_workbook_title_falls_back_to_the_file_name() -> None:
    doc = parse_document(formats.xlsx_workbook(title=None), filename="hr/Holiday Calendar.xlsx")
    assert doc.title == "Holiday Calendar"


def test_the_header_row_opens_every_chunk_of_a_long_sheet(tok) -> None:
    doc = parse_document(formats.xlsx_workbook(benefit_rows_n=300), filename="plans.xlsx")
    chunks = [c for c in chunk_document(doc, tok, max_tokens=96, overlap_tokens=16)
              if c.section == "Medical plans"]  # fmt: skip
    assert len(chunks) > 10
    for chunk in chunks:
        lines = chunk.text.split("\n")
        assert HEADER_LINE in lines[:3], chunk.text[:200]  # first, or under the sheet's name
        assert chunk.token_count <= 96
    # every data row is in some chunk, and no row is repeated as overlap (the header is)
    rows = [ln for c in chunks for ln in c.text.split("\n") if "plan " in ln]
    expected = [" | ".join(str(v) for v in r) for r in formats.benefit_rows(300)]
    assert rows == expected


def test_other_tables_keep_their_ordinary_overlap(tok) -> None:
    doc = parse_document(docs.text_pdf(2, table_page=1), filename="t.pdf")
    assert not any(b.header_row for b in doc.blocks)


def test_a_sheet_over_the_cell_limit_fails_while_reading() -> None:
    data = formats.xlsx_workbook(benefit_rows_n=400)
    with pytest.raises(PermanentError) as err:
        parse_document(data, filename="big.xlsx", limits=ParseLimits(max_table_cells=500))
    assert err.value.code == "too_many_cells"


def test_a_workbook_bomb_is_refused_before_inflating() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("xl/workbook.xml", "<workbook/>")
        z.writestr("xl/worksheets/sheet1.xml", "<row/>" * 2_000_000)
    with pytest.raises(PermanentError) as err:
        parse_document(buf.getvalue(), filename="bomb.xlsx",
                       limits=ParseLimits(max_xml_bytes=1_000_000))  # fmt: skip
    assert err.value.code == "decompression_bomb"


def test_a_broken_workbook_is_xlsx_corrupt() -> None:
    data = formats.xlsx_workbook()
    with pytest.raises(PermanentError) as err:
        parse_document(data[: len(data) // 2], filename="cut.xlsx")
    assert err.value.code in ("xlsx_corrupt", "unsupported_type") and "cut.xlsx" in err.value.reason


# ---- CSV ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (formats.csv_table(), "plans.csv"),
        (formats.csv_table(delimiter=";", encoding="cp1252"), "plans-excel.csv"),
        (formats.csv_table(delimiter="\t"), "plans.tsv"),
        (formats.csv_table(encoding="utf-8-sig"), "plans-bom.csv"),
    ],
)
def test_csv_delimiters_and_encodings(data: bytes, name: str) -> None:
    doc = parse_document(data, filename=name)
    assert doc.doc_type == "csv" and doc.title == name.rsplit(".", 1)[0]
    (table,) = doc.blocks
    rows = table.text.split("\n")
    assert table.kind == "table" and table.header_row and rows[0] == HEADER_LINE
    assert rows[-1] == "Café, Zürich | 55 | 2500 | 15%"  # quoted delimiter, cp1252 decoded


def test_csv_by_content_type() -> None:
    doc = parse_document(formats.csv_table(), filename="export", content_type="text/csv")
    assert doc.doc_type == "csv"


def test_csv_header_in_every_chunk(tok) -> None:
    doc = parse_document(formats.csv_table(rows=200), filename="plans.csv")
    chunks = chunk_document(doc, tok, max_tokens=64, overlap_tokens=16)
    assert len(chunks) > 5
    assert all(c.text.split("\n")[0] == HEADER_LINE for c in chunks)


def test_csv_with_a_runaway_quoted_field_is_invalid() -> None:
    data = b'Plan,Note\nGold,"' + b"x" * (csv.field_size_limit() + 10) + b"\n"
    with pytest.raises(PermanentError) as err:
        parse_document(data, filename="bad.csv")
    assert err.value.code == "csv_invalid" and "line" in err.value.reason


# ---- PPTX ---------------------------------------------------------------------------------------


def test_slide_titles_are_sections_and_slides_are_pages() -> None:
    doc = parse_document(formats.pptx_deck(), filename="onboarding.pptx")
    assert doc.doc_type == "pptx" and doc.title == "Onboarding Deck" and doc.page_count == 5
    headings = [(b.text, b.page) for b in doc.blocks if b.kind == "heading"]
    assert headings == [
        ("Welcome to Contoso", 1),
        ("Day One Checklist", 2),
        ("Benefits Enrollment", 3),
        ("Medical Plans", 4),
        ("Slide 5", 5),  # no title placeholder
    ]
    text = {b.text: (b.section, b.page) for b in doc.blocks if b.kind == "text"}
    assert text["Collect your badge at reception"] == ("Day One Checklist", 2)
    assert text["Speaker notes: smile and say hello."] == ("Welcome to Contoso", 1)
    assert text["Questions? Ask people-ops@example.com"] == ("Slide 5", 5)
    (table,) = [b for b in doc.blocks if b.kind == "table"]
    assert table.header_row and table.section == "Medical Plans"
    assert table.text.split("\n")[0] == HEADER_LINE


def test_slide_chunks_carry_their_slide_title(tok) -> None:
    doc = parse_document(formats.pptx_deck(), filename="onboarding.pptx")
    chunks = chunk_document(doc, tok, max_tokens=48, overlap_tokens=0)
    badge = next(c for c in chunks if "badge" in c.text)
    assert badge.section == "Day One Checklist" and badge.page_start == 2


def test_a_broken_deck_is_pptx_corrupt() -> None:
    with pytest.raises(PermanentError) as err:
        parse_document(b"PK\x03\x04 not really", filename="deck.pptx")
    assert err.value.code == "pptx_corrupt"


def test_a_deck_bomb_is_refused_before_inflating() -> None:
    data = hostile.docx_bomb(200_000)  # a zip whose XML inflates far past the limit
    with pytest.raises(PermanentError) as err:
        parse_document(data, filename="deck.pptx", limits=ParseLimits(max_unzipped_bytes=1 << 20))
    assert err.value.code in ("decompression_bomb", "docx_corrupt")


# ---- EML ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("html", [False, True])
def test_an_announcement_reads_subject_body_and_attachments(html: bool) -> None:
    doc = parse_document(formats.eml_message(html=html), filename="announcement.eml")
    assert doc.doc_type == "eml" and doc.title == formats.ANNOUNCEMENT_SUBJECT
    texts = [b.text for b in doc.blocks]
    assert texts[0] == formats.ANNOUNCEMENT_SUBJECT and doc.blocks[0].kind == "heading"
    assert texts[1].startswith("From: People Operations") and "13 Jan 2025" in texts[1]
    assert "From 1 March every parent gets 20 weeks of paid leave." in texts
    eligible = next(b for b in doc.blocks if "six months" in b.text)
    assert eligible.section == "Eligibility"  # the body's own heading opens a section
    assert texts[-1] == "Attachments: policy.pdf"
    assert "%PDF" not in doc.text  # attachments are listed, not read


def test_a_saved_message_is_recognised_without_its_extension() -> None:
    doc = parse_document(formats.eml_message(attachment=False), filename="download")
    assert doc.doc_type == "eml"


def test_a_plain_text_note_is_not_taken_for_an_email() -> None:
    doc = parse_document(b"From: the desk of HR\n\nPlease read.", filename="note")
    assert doc.doc_type == "text"


# ---- two-column PDF pages -----------------------------------------------------------------------


@pytest.mark.parametrize("interleaved", [True, False])
def test_two_column_pages_read_in_column_order(interleaved: bool) -> None:
    pdf, truths = formats.two_column_pdf(interleaved=interleaved, pages=2)
    doc = parse_document(pdf, filename="newsletter.pdf")
    for page, truth in enumerate(truths, 1):
        body = " ".join(b.text for b in doc.blocks if b.page == page and b.kind == "text")
        assert formats.char_error_rate(truth, body) == 0.0, body[:200]
    headings = [b.text for b in doc.blocks if b.kind == "heading"]
    assert headings == formats.NEWSLETTER_TITLES[:2]


def test_a_borderless_two_column_table_keeps_its_rows() -> None:
    """Short label/value pairs side by side are rows of a table, not two columns of text."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.add_page()
    pdf.set_font("Helvetica", "", 10)
    pairs = [(f"Plan {i}", f"${40 + i} a month") for i in range(12)]
    for i, (label, value) in enumerate(pairs):
        pdf.text(20, 30 + i * 6, label)
        pdf.text(120, 30 + i * 6, value)
    doc = parse_document(bytes(pdf.output()), filename="rates.pdf")
    text = doc.text
    assert text.index("Plan 0") < text.index("$40 a month") < text.index("Plan 1")


def test_a_cyrillic_export_is_not_read_as_western() -> None:
    data = "Имя;Отдел\nИван;Бухгалтерия\nМария;Кадры\n".encode("cp1251")
    (table,) = parse_document(data, filename="staff.csv").blocks
    assert table.text.split("\n") == ["Имя | Отдел", "Иван | Бухгалтерия", "Мария | Кадры"]
