"""PDF parsing on generated PDFs: pages, sections, running headers, tables, bad PDFs."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import pdfplumber
import pytest

from datatorag.domain.errors import PermanentError
from datatorag.parsing import parse_document
from tests.fixtures import documents as docs


@pytest.fixture(scope="module")
def table_pdf() -> bytes:
    return docs.text_pdf(4, table_page=3)


def test_pages_sections_and_title(table_pdf: bytes) -> None:
    doc = parse_document(table_pdf, filename="handbook.pdf")
    assert doc.doc_type == "pdf"
    assert doc.page_count == 4
    assert doc.title == docs.PDF_TITLE  # from the metadata
    for page in range(1, 5):
        marker = [b for b in doc.blocks if docs.page_marker(page) in b.text]
        assert len(marker) == 1 and marker[0].page == page
        assert marker[0].section == docs.section_heading(page)
        headings = [b for b in doc.blocks if b.kind == "heading" and b.page == page]
        assert [h.text for h in headings] == [docs.section_heading(page)]


def test_running_header_and_page_numbers_are_dropped(table_pdf: bytes) -> None:
    text = parse_document(table_pdf, filename="handbook.pdf").text
    assert docs.RUNNING_HEADER not in text
    assert "Page 2 of 4" not in text
    assert "Page" not in text.replace("page number", "")


def test_title_falls_back_to_first_heading() -> None:
    doc = parse_document(docs.text_pdf(2, title=None), filename="x.pdf")
    assert doc.title == docs.section_heading(1)


def test_table_is_extracted_on_its_page_only(table_pdf: bytes) -> None:
    doc = parse_document(table_pdf, filename="handbook.pdf")
    tables = [b for b in doc.blocks if b.kind == "table"]
    assert len(tables) == 1
    table = tables[0]
    assert table.page == 3
    assert table.section == docs.section_heading(3)
    assert [row.split(" | ") for row in table.text.split("\n")] == docs.TABLE_ROWS
    # the cells are not repeated as loose text, and text after the table follows it
    loose = "\n".join(b.text for b in doc.blocks if b.kind != "table")
    assert "Bronze PPO" not in loose
    after = doc.blocks[doc.blocks.index(table) + 1]
    assert after.text == "Text after the table on the same page." and after.page == 3


def test_table_matches_pdfplumber(table_pdf: bytes) -> None:
    """Our finder (pdfplumber's algorithm on PDFium geometry) agrees with plain pdfplumber."""
    with pdfplumber.open(io.BytesIO(table_pdf)) as pdf:
        expected = pdf.pages[2].extract_tables()
        assert all(not p.extract_tables() for i, p in enumerate(pdf.pages) if i != 2)
    doc = parse_document(table_pdf, filename="handbook.pdf")
    ours = [
        [row.split(" | ") for row in b.text.split("\n")] for b in doc.blocks if b.kind == "table"
    ]
    assert ours == expected


def test_paragraphs_and_dehyphenation() -> None:
    pdf = docs.pdf_from_lines(
        [
            [
                ("Leave Policy", 18, True),
                ("", 6, False),
                ("All full-time employ-", 10, False),
                ("ees accrue leave every month.", 10, False),
                ("", 6, False),
                ("A second paragraph starts here.", 10, False),
            ]
        ]
    )
    doc = parse_document(pdf, filename="leave.pdf")
    assert [b.kind for b in doc.blocks] == ["heading", "text", "text"]
    assert doc.blocks[1].text == "All full-time employees accrue leave every month."
    assert doc.blocks[2].text == "A second paragraph starts here."
    assert doc.title == "Leave Policy"


def test_bold_numbered_heading_at_body_size() -> None:
    pdf = docs.pdf_from_lines(
        [
            [
                ("Some introductory text for the policy.", 10, False),
                ("", 6, False),
                ("2.1 Eligibility Rules", 10, True),
                ("Only permanent staff are eligible.", 10, False),
            ]
        ]
    )
    doc = parse_document(pdf, filename="x.pdf")
    assert [(b.kind, b.section) for b in doc.blocks] == [
        ("text", None),
        ("heading", "2.1 Eligibility Rules"),
        ("text", "2.1 Eligibility Rules"),
    ]


def test_magic_bytes_win_over_extension() -> None:
    doc = parse_document(docs.text_pdf(1), filename="notes.txt", content_type="text/plain")
    assert doc.doc_type == "pdf"


def test_unreadable_page_is_named() -> None:
    with pytest.raises(PermanentError) as err:
        parse_document(docs.corrupt_pdf("broken_page"), filename="broken.pdf")
    assert err.value.code == "pdf_corrupt" and "page 2 of 3" in err.value.reason


@pytest.mark.parametrize("kind", ["garbage", "truncated"])
def test_corrupt_pdf(kind: str) -> None:
    with pytest.raises(PermanentError) as err:
        parse_document(docs.corrupt_pdf(kind), filename="broken.pdf")
    assert err.value.code == "pdf_corrupt"
    assert "broken.pdf" in err.value.reason and "corrupt" in err.value.reason


def test_pdf_extension_without_pdf_header_is_not_parsed_as_text() -> None:
    with pytest.raises(PermanentError) as err:
        parse_document(b"this is not a pdf at all", filename="report.pdf")
    assert err.value.code == "pdf_corrupt"


def test_encrypted_pdf() -> None:
    with pytest.raises(PermanentError) as err:
        parse_document(docs.encrypted_pdf(), filename="secret.pdf")
    assert err.value.code == "pdf_encrypted"
    assert "password" in err.value.reason


def test_scanned_pdf_reports_pages_without_text() -> None:
    with pytest.raises(PermanentError) as err:
        parse_document(docs.scanned_pdf(3), filename="scan.pdf")
    assert err.value.code == "pdf_no_text_layer"
    assert "3 of 3 pages" in err.value.reason


def test_parses_from_threads_are_safe_and_identical(table_pdf: bytes) -> None:
    expected = parse_document(table_pdf, filename="a.pdf")
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: parse_document(table_pdf, filename="a.pdf"), range(8)))
    assert all(r == expected for r in results)
