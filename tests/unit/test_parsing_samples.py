"""The shipped sample corpus parses cleanly and is what build_samples.py generates."""

from __future__ import annotations

from pathlib import Path

import pytest

from datatorag.chunking import chunk_document, load_chunk_tokenizer
from datatorag.parsing import parse_document
from samples import build_samples

SAMPLES = sorted(p for p in build_samples.ROOT.iterdir() if p.is_file())


def test_corpus_shape() -> None:
    types = [p.suffix for p in SAMPLES]
    assert 10 <= len(SAMPLES) <= 14
    assert types.count(".pdf") >= 4
    assert {".pdf", ".md", ".html", ".docx", ".txt", ".json"} <= set(types)


def test_generated_files_are_up_to_date() -> None:
    """Committed binaries equal a fresh deterministic build of _src/ (no stale or stray file)."""
    assert build_samples.main(["--check"]) == 0


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_sample_parses_with_title_sections_and_chunks(path: Path) -> None:
    src = next(
        s
        for s in map(build_samples.load, sorted(build_samples.SRC.glob("*.md")))
        if s.output == path
    )
    doc = parse_document(path.read_bytes(), filename=path.name)
    assert doc.title == (src.title if path.suffix != ".json" else path.stem)
    headings = {b.text for b in doc.blocks if b.kind == "heading"}
    expected = {
        e.text for e in src.elements if e.kind == "h" and (path.suffix != ".json" or e.level == 2)
    }
    assert expected <= headings
    tables = [b for b in doc.blocks if b.kind == "table"]
    src_tables = [e for e in src.elements if e.kind == "table"]
    if path.suffix != ".txt":  # plain text has no table markup
        assert [t.text.split("\n") for t in tables] == [
            [" | ".join(r) for r in e.rows] for e in src_tables
        ]
    # every paragraph of the source is in the parsed text, whole (a paragraph that runs over a
    # page break is two blocks)
    flat = " ".join(" ".join(b.text.split()) for b in doc.blocks)
    body = src.elements
    if path.suffix == ".json":  # records start at the first level-2 heading
        body = body[next(i for i, e in enumerate(body) if e.kind == "h" and e.level == 2) :]
    for e in body:
        if e.kind == "p":
            assert e.text in flat
    chunks = chunk_document(doc, load_chunk_tokenizer())
    assert chunks and all(c.title == doc.title for c in chunks)


def test_pdf_running_header_and_footer_are_gone() -> None:
    for path in (p for p in SAMPLES if p.suffix == ".pdf"):
        doc = parse_document(path.read_bytes(), filename=path.name)
        assert doc.page_count and doc.page_count >= 1
        text = doc.text
        if doc.page_count > 1:
            assert "Northwind Robotics | " not in text
        assert " of " not in " ".join(b.text for b in doc.blocks if b.text.startswith("Page "))
