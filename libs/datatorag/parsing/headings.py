"""Heuristics for telling a heading line from body text when a format has no heading markup."""

from __future__ import annotations

import re

_NUMBERED = re.compile(
    r"^(?:(?:\d{1,2}(?:\.\d{1,2})*\.?)|(?:[IVXLC]+\.)|(?:[A-Z]\.)|(?:§\s*\d+))\s+\S"
)
_SECTION_WORD = re.compile(r"^(?:section|article|chapter|part|appendix)\s+[\dA-Z]", re.IGNORECASE)
_SMALL_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "as",
        "at",
        "but",
        "by",
        "for",
        "from",
        "in",
        "into",
        "nor",
        "of",
        "on",
        "or",
        "per",
        "the",
        "to",
        "via",
        "vs",
        "with",
    ]
)
MAX_HEADING_CHARS = 120
MAX_HEADING_WORDS = 14


def looks_like_heading_text(line: str) -> bool:
    """Short, not a sentence, and numbered / ALL CAPS / Title Case."""
    line = line.strip()
    if not line or len(line) > MAX_HEADING_CHARS or line[-1] in ".,;!?":
        return False
    words = line.split()
    if len(words) > MAX_HEADING_WORDS or not any(c.isalpha() for c in line):
        return False
    if _NUMBERED.match(line) or _SECTION_WORD.match(line):
        return True
    if line.isupper() and sum(c.isalpha() for c in line) >= 3:  # ALL CAPS
        return True
    return is_title_case(words)


def is_title_case(words: list[str]) -> bool:
    alpha = [w for w in words if w[:1].isalpha()]
    if not alpha or not alpha[0][0].isupper():
        return False
    return all(w[0].isupper() or w.lower() in _SMALL_WORDS for w in alpha)


def is_numbered_heading(line: str) -> bool:
    return bool(_NUMBERED.match(line.strip()) or _SECTION_WORD.match(line.strip()))
