"""Sentences and terms: the units the answer layer scores, quotes and checks.

A passage is split into *units*: prose sentences, and table rows (the parsers write a table as
``a | b | c`` lines under a header row), each row rendered with its header ("Years of service:
3 to 5 years; Annual PTO: 20 days") so it reads on its own. A unit keeps ``quote``, the exact
span of the passage it came from, so a citation's quote can always be found in its chunk.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# A sentence ends at . ! or ? followed by space and an upper-case letter, digit or quote; the
# look-behinds keep "e.g. the", "U.S. law", "Inc. (", "No. 5" and decimals together.
_SENTENCE_END = re.compile(
    r"(?<!\be\.g)(?<!\bi\.e)(?<!\betc)(?<!\bInc)(?<!\bNo)(?<!\bvs)(?<!\bMr)(?<!\bMs)(?<!\bDr)"
    r"(?<!\b[A-Z])[.!?](?=\s+[\"'(“]?[A-Z0-9])"
)
_WORD = re.compile(r"[a-z0-9]+(?:[.'’][a-z0-9]+)*")
_MARKER = re.compile(r"\[\d+(?:\s*,\s*\d+)*\]")
_SPACE = re.compile(r"\s+")

_STOPWORD_TEXT = """
    a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself yourselves
    may might must shall get gets got also per via much many any every whether need needs
    company employee employees our us please tell know"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


@dataclass(frozen=True)
class Unit:
    text: str  # what is scored and what an extractive answer says
    quote: str  # the exact span of the passage
    start: int  # offset of ``quote`` in the passage
    is_table_row: bool = False


def normalise(text: str) -> str:
    """Case, compatibility forms, curly quotes, dashes and whitespace folded."""
    text = unicodedata.normalize("NFKC", text)
    text = text.translate(_FOLD)
    return _SPACE.sub(" ", text).strip().casefold()


_FOLD = str.maketrans(
    {"‘": "'", "’": "'", "“": '"', "”": '"', "–": "-", "—": "-", "‑": "-", "\u00ad": None}
)


def stem(word: str) -> str:
    """A light suffix stripper: enough that "days"/"day" and "reimbursed"/"reimbursement"
    meet; the semantic score carries the rest."""
    for suffix in (
        "ements", "ement", "ments", "ment", "ions", "ion", "ings", "ing", "ies", "ied", "ed", "es"
    ):  # fmt: skip
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)] + ("y" if suffix in ("ies", "ied") else "")
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    if len(word) > 4 and word.endswith("e"):
        return word[:-1]
    return word


def terms(text: str) -> list[str]:
    """Content terms, stemmed, in order (stop words and one-letter words dropped)."""
    words = _WORD.findall(normalise(_MARKER.sub(" ", text)))
    return [stem(w) for w in words if w not in STOPWORDS and (len(w) > 1 or w.isdigit())]


def strip_markers(text: str) -> str:
    return _SPACE.sub(" ", _MARKER.sub("", text)).strip()


def split_sentences(text: str) -> list[tuple[int, str]]:
    """``(offset, sentence)`` pairs of prose; line breaks end a sentence too."""
    out: list[tuple[int, str]] = []
    for line_start, line in _lines(text):
        start = 0
        for m in _SENTENCE_END.finditer(line):
            _append(out, line_start, line, start, m.end())
            start = m.end()
        _append(out, line_start, line, start, len(line))
    return out


def _append(out: list[tuple[int, str]], base: int, line: str, start: int, end: int) -> None:
    piece = line[start:end]
    stripped = piece.strip()
    if stripped:
        out.append((base + start + (len(piece) - len(piece.lstrip())), stripped))


def _lines(text: str) -> list[tuple[int, str]]:
    out, pos = [], 0
    for line in text.split("\n"):
        out.append((pos, line))
        pos += len(line) + 1
    return out


def units(text: str, *, section: str | None = None) -> list[Unit]:
    """Prose sentences and table rows of a passage; headings (short lines without a full stop,
    such as the section title the chunker puts first) are not units."""
    out: list[Unit] = []
    header: list[str] | None = None
    for line_start, line in _lines(text):
        stripped = line.strip()
        if " | " in stripped and stripped.count("|") >= 1:
            cells = [c.strip() for c in stripped.split("|")]
            if header is None or len(cells) != len(header):
                header = cells  # the first row of a table is its header
                continue
            rendered = "; ".join(f"{h}: {c}" for h, c in zip(header, cells, strict=True) if c)
            out.append(Unit(rendered + ".", stripped, line_start + line.index(stripped), True))
            continue
        header = None
        if not stripped or _is_heading(stripped, section):
            continue
        for offset, sentence in split_sentences(line):
            if len(sentence.split()) >= 3:
                out.append(Unit(sentence, sentence, line_start + offset))
    return out


def _is_heading(line: str, section: str | None) -> bool:
    if section is not None and normalise(line) == normalise(section):
        return True
    return len(line.split()) <= 8 and not line.rstrip().endswith((".", "?", "!", ":", ";"))
