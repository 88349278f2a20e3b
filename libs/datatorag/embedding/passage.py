"""What the embedding model reads for a chunk: where it sits (document title and section) in
front of its text. A chunk of a "Benefits" page whose section is "Parental leave" rarely says
either word; with the heading in front, a question about parental leave finds it (measured on
the held-out handbook questions: bench/bench_handbooks.py, BENCHMARKS.md). Only the embedding
input changes: the stored chunk text, BM25 and citations keep the chunk's own text, and the
embedding cache keys follow the input, so a changed heading is embedded again.
"""

from __future__ import annotations


def passage_heading(title: str | None, section: str | None) -> str:
    """ "Title > Section" (either alone when the other is missing or they are the same)."""
    parts = [p.strip() for p in (title, section) if p and p.strip()]
    if len(parts) == 2 and parts[0].casefold() == parts[1].casefold():
        parts = parts[:1]
    return " > ".join(parts)


def passage_text(text: str, title: str | None, section: str | None) -> str:
    heading = passage_heading(title, section)
    return f"{heading}\n{text}" if heading else text
