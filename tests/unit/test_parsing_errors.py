"""Every bad-input code, with a reason a person can act on."""

from __future__ import annotations

import io
import zipfile

import pytest

from datatorag.domain.errors import PermanentError
from datatorag.parsing import ERROR_CODES, parse_document
from tests.fixtures import documents as docs


def fail(data: bytes, filename: str, **kw: object) -> PermanentError:
    with pytest.raises(PermanentError) as err:
        parse_document(data, filename=filename, **kw)  # type: ignore[arg-type]
    assert err.value.code in ERROR_CODES
    return err.value


def test_empty_file() -> None:
    err = fail(docs.empty_file(), "empty.pdf")
    assert err.code == "empty_file" and "0 bytes" in err.reason


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (b"  \n\n\t ", "blank.txt"),
        (b"<html><body><script>x()</script></body></html>", "s.html"),
        (b"[]", "none.json"),
    ],
)
def test_no_text_at_all(data: bytes, name: str) -> None:
    err = fail(data, name)
    assert err.code == "empty_file" and "no text" in err.reason


def test_too_large_states_size_and_limit() -> None:
    err = fail(b"x" * 3000, "big.txt", max_bytes=2048)
    assert err.code == "too_large"
    assert "3,000 bytes" in err.reason and "2,048 bytes" in err.reason and "2.0 KiB" in err.reason


def test_size_at_the_limit_is_fine() -> None:
    assert parse_document(b"x" * 2048, filename="ok.txt", max_bytes=2048).blocks


def test_invalid_utf8_reports_offset() -> None:
    err = fail(docs.invalid_utf8_text(), "cafe.txt")
    assert err.code == "invalid_utf8"
    assert f"byte offset {docs.INVALID_UTF8_OFFSET}" in err.reason and "0xe9" in err.reason


def test_invalid_utf8_after_bom_counts_the_bom() -> None:
    err = fail(b"\xef\xbb\xbfabc\xff", "bom.md")
    assert err.code == "invalid_utf8" and "byte offset 6" in err.reason


def test_invalid_utf8_in_json() -> None:
    assert fail(b'{"title": "caf\xe9"}', "r.json").code == "invalid_utf8"


def test_html_with_declared_legacy_charset_is_decoded() -> None:
    html = (
        '<html><head><meta charset="iso-8859-1"><title>Caf\xe9</title></head>'
        "<body><p>Men\xfc</p></body></html>"
    )
    doc = parse_document(html.encode("latin-1"), filename="old.html")
    assert doc.title == "Café" and doc.blocks[0].text == "Menü"


@pytest.mark.parametrize(
    ("data", "name", "hint"),
    [
        (b"GIF89a" + b"\x00" * 50, "scan.gif", "GIF image"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 50, "old.doc", "legacy"),
        (b"some bytes", "slides.odp", "presentation"),
        (b"\x00\x01\x02binary\x00", "blob.bin", "binary"),
        (b"%!PS-Adobe-3.0", "x.ps", "application/postscript"),
    ],
)
def test_unsupported_type(data: bytes, name: str, hint: str) -> None:
    ctype = "application/postscript" if name.endswith(".ps") else None
    err = fail(data, name, content_type=ctype)
    assert err.code == "unsupported_type" and hint in err.reason


def test_zip_that_is_not_an_office_document() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("content.xml", "<office/>")
    err = fail(buf.getvalue(), "archive.zip")
    assert err.code == "unsupported_type" and "zip archive" in err.reason


def test_a_workbook_missing_its_parts_is_xlsx_corrupt() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("xl/workbook.xml", "<workbook/>")
    err = fail(buf.getvalue(), "sheet.xlsx")
    assert err.code == "xlsx_corrupt" and "sheet.xlsx" in err.reason


@pytest.mark.parametrize("data", [docs.corrupt_docx(), b"PK\x03\x04 truncated zip", b"plain text"])
def test_docx_corrupt(data: bytes) -> None:
    err = fail(data, "policy.docx")
    assert err.code == "docx_corrupt" and "policy.docx" in err.reason


@pytest.mark.parametrize(
    ("data", "where"),
    [
        (b'{"title": "x",, }', "line 1 column 15"),
        (b'[{"a": 1}\n', "line 2 column 1"),
        (b"42", "got a int"),
    ],
)
def test_json_invalid(data: bytes, where: str) -> None:
    err = fail(data, "records.json")
    assert err.code == "json_invalid" and where in err.reason


def test_pdf_errors_have_their_own_codes() -> None:
    assert fail(docs.corrupt_pdf(), "a.pdf").code == "pdf_corrupt"
    assert fail(docs.encrypted_pdf(), "b.pdf").code == "pdf_encrypted"
    assert fail(docs.scanned_pdf(1), "c.pdf").code == "pdf_no_text_layer"


@pytest.mark.parametrize("data", [b"[" * 100_000, b'{"a":' * 5000 + b"1" + b"}" * 5000])
def test_json_nested_too_deeply(data: bytes) -> None:
    err = fail(data, "deep.json")
    assert err.code == "json_invalid" and "nested too deeply" in err.reason


def test_absurdly_deep_html_still_gives_its_text() -> None:
    doc = parse_document(b"<div>" * 50_000 + b"deep text", filename="deep.html")
    assert [b.text for b in doc.blocks] == ["deep text"]
