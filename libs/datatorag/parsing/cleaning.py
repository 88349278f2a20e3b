"""Text normalisation shared by every reader."""

from __future__ import annotations

import re
import unicodedata

# control characters except tab/newline; zero-width characters; the BOM
_INVISIBLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200d\u2060\ufeff]")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]+")
# a letter, a (soft/hard) hyphen at the end of a line, then a lowercase continuation
_LINE_HYPHEN = re.compile(r"(\w)[-\u00ad\x02]\s*\n\s*(?=[a-z])")


def normalise(text: str) -> str:
    """NFKC (ligatures, full-width forms), drop invisible characters and soft hyphens."""
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("\u00ad", "").replace("\ufffe", "")  # soft hyphen; PDFium's line-join mark
    return _INVISIBLE.sub("", text)


def dehyphenate(text: str) -> str:
    """Join words split by a hyphen at a line break: 'employ-\\nees' -> 'employees'."""
    return _LINE_HYPHEN.sub(r"\1", text)


def collapse(text: str) -> str:
    """One paragraph on one line: every whitespace run becomes a single space."""
    return _SPACES.sub(" ", re.sub(r"\s*\n\s*", " ", text)).strip()


def clean_paragraph(text: str) -> str:
    """Normalise, de-hyphenate and collapse a paragraph that may span several lines."""
    return collapse(dehyphenate(normalise(text).replace("\r\n", "\n").replace("\r", "\n")))


def clean_inline(text: str) -> str:
    """Normalise and collapse a short piece (a heading, a table cell)."""
    return collapse(normalise(text))
