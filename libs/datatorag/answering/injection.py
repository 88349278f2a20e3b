"""Text inside a document is data, never an instruction.

Two defences, both applied before any provider sees a source:

* sources are fenced in the prompt with a per-request random token the document cannot know,
  so it cannot close its own fence (``datatorag.answering.prompt``);
* sentences that address the reader as an assistant ("ignore previous instructions", "you are
  now", "system prompt", "respond only with") are cut from the passage: no HR policy needs to
  say them, and a model that would obey them never reads them. The cut is counted and logged.
"""

from __future__ import annotations

import re

_PATTERNS = [
    r"\b(ignore|disregard|forget|override)\b.{0,40}\b(instruction|prompt|rule|guideline|"
    r"direction|context|message)s?\b",
    r"\byou are (now|no longer)\b",
    r"\b(system|developer) (prompt|message|instruction)s?\b",
    r"\b(respond|reply|answer|say|output)\b.{0,30}\b(only|exactly|always)\b.{0,40}"
    r"\b(with|that|the following)\b",
    r"\bas an? (ai|language model|assistant|chatbot|llm)\b",
    r"\b(new|updated|real) instructions?\b",
    r"\bdo not (cite|mention|reveal)\b.{0,30}\b(source|document|instruction)s?\b",
    r"</?\s*(system|assistant|user|source|sources|instructions?)\s*>",
]
_INJECTION = re.compile("|".join(f"(?:{p})" for p in _PATTERNS), re.IGNORECASE | re.DOTALL)
# sentence boundaries for the cut: keep the surrounding text intact
_PIECES = re.compile(r"[^.!?\n]*(?:[.!?]+|\n|$)")


def looks_like_instruction(text: str) -> bool:
    return _INJECTION.search(text) is not None


def neutralise(text: str) -> tuple[str, int]:
    """``text`` without its instruction-like sentences, and how many were cut."""
    if _INJECTION.search(text) is None:
        return text, 0
    kept: list[str] = []
    cut = 0
    for m in _PIECES.finditer(text):
        piece = m.group()
        if piece and _INJECTION.search(piece):
            cut += 1
            kept.append("\n" if piece.endswith("\n") else " ")
        else:
            kept.append(piece)
    return "".join(kept), cut
