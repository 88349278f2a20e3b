"""OCR with Tesseract (Debian ``tesseract-ocr`` + ``tesseract-ocr-eng``), one page image at a time.

The ``tesseract`` binary runs as a child of the parse sandbox worker: it inherits the worker's
memory limit (``RLIMIT_AS``) and CPU limit, sits in the worker's process group (killed with it
when a parse overruns its wall clock), and each page also has its own timeout. One OpenMP thread
per process: the sandbox already runs one parse per core.

A page is first turned straight (``deskew``: scanners feed paper a few degrees askew). Its TSV
output gives every word with its box and confidence; words are grouped into Tesseract's
lines, which become :class:`~datatorag.parsing.layout.Line` objects in PDF units, so paragraphs,
headings and running headers are found exactly as for a text layer. A page's confidence is the
mean word confidence weighted by word length (0-100).
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from datatorag.domain.errors import PermanentError
from datatorag.parsing.layout import Line
from datatorag.parsing.model import OcrPage

if TYPE_CHECKING:
    from PIL.Image import Image

TESSERACT = os.environ.get("DATATORAG_TESSERACT", "tesseract")
# pages under this mean word confidence are reported (registry metadata: ocr.low_confidence_pages)
LOW_CONFIDENCE = 70.0
PAGE_TIMEOUT_S = 120.0
RENDER_DPI = 300  # scanned PDF pages are rendered at this resolution for OCR
# a "word" without a letter or digit read with less confidence than this is a speck of dirt
_NOISE_CONFIDENCE = 85.0
_SPECK_CONFIDENCE = 40.0


@dataclass
class OcrResult:
    lines: list[Line]
    page: OcrPage


@lru_cache(maxsize=1)
def tesseract_path() -> str | None:
    """The tesseract binary, or None where it is not installed."""
    return shutil.which(TESSERACT)


def require_tesseract(filename: str) -> str:
    path = tesseract_path()
    if path is None:
        raise PermanentError(
            f"{filename!r} needs OCR, and OCR is not available on this parser: the "
            f"{TESSERACT!r} binary is not installed (Debian: apt-get install tesseract-ocr "
            "tesseract-ocr-eng)",
            code="ocr_unavailable",
        )
    return path


def ocr_image(image: Image, *, page: int, scale: float, filename: str) -> OcrResult:
    """Text lines of one page image (grayscale). ``scale`` is pixels per PDF unit (dpi / 72):
    line positions and sizes come back in PDF units, y growing upwards."""
    binary = require_tesseract(filename)
    image = deskew(image)
    buf = io.BytesIO()
    image.save(buf, format="PPM")  # no compression to spend time on; leptonica reads it
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "OMP_THREAD_LIMIT": "1"}
    if "TESSDATA_PREFIX" in os.environ:
        env["TESSDATA_PREFIX"] = os.environ["TESSDATA_PREFIX"]
    try:
        proc = subprocess.run(
            [binary, "stdin", "stdout", "-l", "eng", "--psm", "3", "tsv"],
            input=buf.getvalue(),
            capture_output=True,
            env=env,
            timeout=PAGE_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise PermanentError(
            f"{filename!r}: OCR of page {page} took longer than {PAGE_TIMEOUT_S:g} s",
            code="parse_timeout",
        ) from None
    del buf
    if proc.returncode != 0:
        why = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise PermanentError(
            f"{filename!r}: OCR of page {page} failed (tesseract exit {proc.returncode}: "
            f"{why[-1] if why else 'no message'})",
            code="ocr_failed",
        )
    return _lines_of(proc.stdout.decode("utf-8", "replace"), page, scale, image.height / scale)


_Word = tuple[int, int, int, int, float, str]


def _skew(lines: list[list[_Word]]) -> float:
    """The page's skew as the median slope (pixels down per pixel right) of its lines' words."""
    slopes = []
    for ws in lines:
        if len(ws) < 3:
            continue
        xs = [w[0] + w[2] / 2 for w in ws]
        ys = [float(w[1] + w[3]) for w in ws]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        var = sum((x - mx) ** 2 for x in xs)
        if var > 0:
            slopes.append(sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var)
    return sorted(slopes)[len(slopes) // 2] if slopes else 0.0


def _even_sizes(lines: list[Line]) -> None:
    """A line without ascenders or descenders has a shorter box: sizes near the page's usual one
    become that size (paragraphs are not cut at such a line), clearly larger ones stay
    (headings)."""
    if not lines:
        return
    usual = sorted(ln.size for ln in lines)[len(lines) // 2]
    for ln in lines:
        size = usual if abs(ln.size - usual) <= 0.25 * usual else ln.size
        ln.size = round(size * 2) / 2


_MAX_SKEW_DEG = 5.0
_SKEW_STEP_DEG = 0.25


def deskew(image: Image) -> Image:
    """The page turned straight. Tesseract's own layout analysis loses whole paragraphs of a
    noisy page scanned a few degrees clockwise; the skew is the angle whose row profile of ink
    is the sharpest (lines of text become thin dark bands), found on a quarter-size copy."""
    import numpy as np
    from PIL import Image as PILImage

    small = image.reduce(4) if min(image.size) >= 800 else image
    ink = PILImage.fromarray(((np.asarray(small) < 128) * 255).astype(np.uint8))
    best, best_score = 0.0, -1.0
    steps = int(_MAX_SKEW_DEG / _SKEW_STEP_DEG)
    for i in range(-steps, steps + 1):
        angle = i * _SKEW_STEP_DEG
        rows = np.asarray(ink.rotate(angle), dtype=np.float32).sum(axis=1)
        score = float(np.square(np.diff(rows)).sum())
        if score > best_score:
            best, best_score = angle, score
    if best == 0.0:
        return image
    return image.rotate(best, resample=PILImage.Resampling.BICUBIC, fillcolor=255)


def _lines_of(tsv: str, page: int, scale: float, height_pt: float) -> OcrResult:
    # level page block par line word left top width height conf text
    rows: dict[tuple[int, int, int], list[_Word]] = {}
    for row in tsv.splitlines()[1:]:
        cols = row.split("\t")
        if len(cols) != 12 or cols[0] != "5":
            continue
        text = cols[11].strip()
        conf = float(cols[10])
        if not text or conf < 0:
            continue
        if conf < _NOISE_CONFIDENCE and not any(c.isalnum() for c in text):
            continue
        if conf < _SPECK_CONFIDENCE and len(text) <= 2:
            continue  # dust read as "ey" or "i."
        left, top, width, height = (int(v) for v in cols[6:10])
        key = (int(cols[2]), int(cols[3]), int(cols[4]))
        rows.setdefault(key, []).append((left, top, width, height, conf, text))
    lines: list[Line] = []
    weighted = 0.0
    chars = words = 0
    skew = _skew(list(rows.values()))
    # Tesseract numbers blocks, paragraphs and lines in reading order (columns included)
    for key in sorted(rows):
        ws = sorted(rows[key], key=lambda w: w[0])
        for *_, conf, text in ws:
            weighted += conf * len(text)
            chars += len(text)
            words += 1
        # the page is straight (deskew). Size: a line's tall words span ascenders to descenders,
        # about 0.95 em (the upper quartile of its words' heights: a speck read as a word can be
        # tall). Baseline: its words' median bottom (a descender moves one word, not the line),
        # with what is left of the skew taken out
        heights = sorted(w[3] for w in ws)
        height = heights[(3 * len(heights)) // 4]
        base = sorted(w[1] + w[3] - skew * (w[0] + w[2] / 2) for w in ws)
        lines.append(
            Line(
                " ".join(w[5] for w in ws),
                page,
                min(w[0] for w in ws) / scale,
                height_pt - base[len(base) // 2] / scale,
                height / scale / 0.95,
                False,
            )
        )
    _even_sizes(lines)
    confidence = weighted / chars if chars else 0.0
    return OcrResult(lines, OcrPage(page, round(confidence, 1), words))
