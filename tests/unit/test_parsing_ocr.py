"""OCR (Tesseract) of scanned pages: images (PNG, JPEG, multi-page TIFF) and scanned PDF pages
become text with a per-page confidence, only pages without a usable text layer are OCR'd, a
poor scan is reported as low confidence, and a huge image is refused from its header.

The pages are generated here with known text (rendered with a DejaVu font, rotated 2-3 degrees,
noised); the character error rate is asserted under 2%."""

from __future__ import annotations

import os
import time

import pytest

from datatorag.domain.errors import PermanentError
from datatorag.parsing import ParseLimits, parse_document
from datatorag.parsing.ocr import LOW_CONFIDENCE, tesseract_path
from tests.fixtures import documents as docs
from tests.fixtures import formats

if tesseract_path() is None:
    if os.environ.get("CI"):
        raise RuntimeError("tesseract is not installed (apt-get install tesseract-ocr)")
    pytest.skip("tesseract is not installed", allow_module_level=True)

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize(("seed", "rotate"), [(1, 2.5), (2, -3.0)])
def test_a_scanned_png_reads_with_under_two_percent_cer(seed: int, rotate: float) -> None:
    png, truth = formats.scanned_page(seed, rotate=rotate)
    doc = parse_document(png, filename="scan.png")
    assert doc.doc_type == "image" and doc.page_count == 1
    cer = formats.char_error_rate(truth, doc.text)
    assert cer < 0.02, (cer, doc.text[:300])
    # the heading is told apart by its size, paragraphs by their gaps
    assert doc.title == "Leave Policy" and doc.blocks[0].kind == "heading"
    assert [b.kind for b in doc.blocks[1:]] == ["text"] * 3
    assert all(b.section == "Leave Policy" and b.page == 1 for b in doc.blocks)
    (page,) = doc.ocr
    assert page.page == 1 and page.confidence > LOW_CONFIDENCE and page.words > 100


def test_jpeg_and_multi_page_tiff() -> None:
    one, truth1 = formats.scanned_page(3, paragraphs_n=1, heading=None)
    two, truth2 = formats.scanned_page(4, paragraphs_n=1, heading=None)
    jpeg = parse_document(formats.image_as(one, "JPEG"), filename="scan.jpg")
    assert formats.char_error_rate(truth1, jpeg.text) < 0.02
    tiff = parse_document(formats.image_as(one, "TIFF", frames=[two]), filename="scan.tiff")
    assert tiff.page_count == 2 and [p.page for p in tiff.ocr] == [1, 2]
    assert [b.page for b in tiff.blocks] == [1, 2]
    assert formats.char_error_rate(truth1 + "\n" + truth2, tiff.text) < 0.02


def test_images_are_detected_by_magic_bytes_not_by_name() -> None:
    png, _ = formats.scanned_page(3, paragraphs_n=1)
    assert parse_document(png, filename="download").doc_type == "image"


def test_only_pages_without_a_text_layer_are_ocr_d() -> None:
    scan1, truth1 = formats.scanned_page(6, paragraphs_n=2)
    scan3, truth3 = formats.scanned_page(7, paragraphs_n=2, heading="Expense Policy")
    typed = "This page was typed and has a text layer. Receipts are kept for seven years."
    pdf = formats.scanned_pdf_with_text([scan1, b"", scan3], text_pages={1: typed})
    doc = parse_document(pdf, filename="mixed.pdf")
    assert doc.page_count == 3
    assert [p.page for p in doc.ocr] == [1, 3]  # page 2 was read from its text layer
    by_page = {n: " ".join(b.text for b in doc.blocks if b.page == n) for n in (1, 2, 3)}
    assert by_page[2] == typed
    assert formats.char_error_rate(truth1, by_page[1]) < 0.02
    assert formats.char_error_rate(truth3, by_page[3]) < 0.02
    # OCR'd sizes are matched to the text layer's: the scanned headings open sections, the body
    # lines do not pass for headings
    headings = [b.text for b in doc.blocks if b.kind == "heading"]
    assert headings == ["Leave Policy", "Expense Policy"]


def test_a_poor_scan_is_read_and_reported_as_low_confidence() -> None:
    good, _ = formats.scanned_page(8, paragraphs_n=1)
    poor, _ = formats.poor_scan(9, factor=6)  # 50 dpi: the renderer smooths it up to 300
    pdf = formats.scanned_pdf_with_text([good, poor])
    doc = parse_document(pdf, filename="faded.pdf")
    confidence = {p.page: p.confidence for p in doc.ocr}
    assert confidence[1] >= LOW_CONFIDENCE > confidence[2] > 0
    assert any(b.page == 2 for b in doc.blocks)  # the text is kept, only flagged


def test_a_scan_without_text_keeps_its_no_text_layer_code() -> None:
    with pytest.raises(PermanentError) as err:
        parse_document(docs.scanned_pdf(2), filename="strokes.pdf")
    assert err.value.code == "pdf_no_text_layer"
    assert "OCR found no text" in err.value.reason


def test_a_huge_image_is_refused_from_its_header_before_decoding() -> None:
    data = formats.huge_png(50_000, 50_000)
    started = time.monotonic()
    with pytest.raises(PermanentError) as err:
        parse_document(data, filename="poster.png")
    assert err.value.code == "image_too_large"
    assert "50,000 x 50,000" in err.value.reason and "MAX_IMAGE_PIXELS" in err.value.reason
    assert time.monotonic() - started < 5  # nothing was decoded (2.5 GB of pixels)


def test_the_pixel_limit_is_configurable() -> None:
    png, _ = formats.scanned_page(3, paragraphs_n=1)
    with pytest.raises(PermanentError) as err:
        parse_document(png, filename="a.png", limits=ParseLimits(max_image_pixels=1_000_000))
    assert err.value.code == "image_too_large"


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 50, "image_corrupt"),
        (b"\xff\xd8\xff\xe0 truncated jpeg", "image_corrupt"),
    ],
)
def test_corrupt_images_fail_with_a_reason(data: bytes, code: str) -> None:
    with pytest.raises(PermanentError) as err:
        parse_document(data, filename="broken.img")
    assert err.value.code == code and "broken.img" in err.value.reason


def test_a_poor_image_is_reported_as_low_confidence() -> None:
    poor, _ = formats.poor_scan(10)
    doc = parse_document(poor, filename="faded.png")
    assert 0 < doc.ocr[0].confidence < LOW_CONFIDENCE and doc.blocks


def test_a_blank_image_has_no_text() -> None:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (800, 600), 255).save(buf, format="PNG")
    with pytest.raises(PermanentError) as err:
        parse_document(buf.getvalue(), filename="blank.png")
    assert err.value.code == "ocr_no_text"
