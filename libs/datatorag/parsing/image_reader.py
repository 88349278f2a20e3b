"""Images (PNG, JPEG, TIFF; a multi-page TIFF is one page per frame): text by OCR.

Pillow reads only the header on ``open``: every frame's declared size is checked against the
pixel limit before a single pixel is decoded, so a 50k x 50k image costs nothing.
"""

from __future__ import annotations

import io

from datatorag.domain.errors import PermanentError
from datatorag.parsing import limits, ocr
from datatorag.parsing.layout import Page, drop_running_lines, page_blocks
from datatorag.parsing.model import OcrPage, ParsedDocument

_DEFAULT_DPI = 300.0


def parse_image(data: bytes, filename: str) -> ParsedDocument:
    from PIL import Image, ImageOps, UnidentifiedImageError

    used = limits.current()
    # our pixel limit, checked on every frame before it is decoded, stands in for Pillow's
    # global one (which would refuse at open() with a message that names no setting of ours)
    Image.MAX_IMAGE_PIXELS = None
    try:
        image = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise PermanentError(
            f"{filename!r} is not a readable image ({exc})", code="image_corrupt"
        ) from None
    frames = int(getattr(image, "n_frames", 1) or 1)
    used.check_pages(frames)
    ocr.require_tesseract(filename)
    pages: list[Page] = []
    confidences: list[OcrPage] = []
    for n in range(frames):
        try:
            image.seek(n)
            used.check_image(*image.size, where=f"page {n + 1}" if frames > 1 else "the image")
            gray = ImageOps.exif_transpose(image).convert("L")
        except PermanentError:
            raise
        except (OSError, ValueError, EOFError, SyntaxError) as exc:
            raise PermanentError(
                f"{filename!r}: page {n + 1} of the image cannot be decoded ({exc}); the file is "
                "corrupt or truncated",
                code="image_corrupt",
            ) from None
        result = ocr.ocr_image(gray, page=n + 1, scale=_dpi(image) / 72, filename=filename)
        del gray
        used.charge_text(sum(len(line.text) for line in result.lines))
        pages.append(Page(n + 1, result.lines, []))
        confidences.append(result.page)
    if not any(p.lines for p in pages):
        raise PermanentError(
            f"{filename!r}: OCR found no text in {frames} page{'s' if frames != 1 else ''} "
            "of the image",
            code="ocr_no_text",
        )
    drop_running_lines(pages)
    blocks, first_heading = page_blocks(pages)
    title = first_heading or next((b.text for b in blocks), None)
    return ParsedDocument(
        title=title, doc_type="image", page_count=frames, blocks=blocks, ocr=confidences
    )


def _dpi(image: object) -> float:
    info = getattr(image, "info", {}) or {}
    dpi: object = info.get("dpi")
    try:
        value = float(dpi[1] if isinstance(dpi, tuple) else dpi)  # type: ignore[arg-type]
    except (TypeError, ValueError, IndexError):
        return _DEFAULT_DPI
    return value if 50 <= value <= 1200 else _DEFAULT_DPI
