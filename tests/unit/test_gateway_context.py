"""The LLM context block: numbered citations, overlap merging, de-duplication, budgets."""

from __future__ import annotations

import pytest

from datatorag.domain.models import ChunkRecord, SearchHit
from datatorag.retrieval.context import build_context


def chunk_hit(
    doc: str,
    n: int,
    text: str,
    *,
    version: str = "v1",
    title: str | None = "Handbook",
    pages: tuple[int, int] | None = (1, 1),
    score: float = 1.0,
) -> SearchHit:
    record = ChunkRecord(
        id=f"{doc}:{version}:{n}",
        tenant="acme",
        doc_id=doc,
        version=version,
        chunk_index=n,
        text=text,
        title=title,
        page_start=pages[0] if pages else None,
        page_end=pages[1] if pages else None,
        source="hr",
        path=f"policies/{doc}.pdf",
    )
    return SearchHit(chunk=record, score=score)


def test_numbered_citations_in_hit_order() -> None:
    hits = [
        chunk_hit("leave", 3, "Parental leave is sixteen weeks.", pages=(4, 5)),
        chunk_hit("travel", 0, "Book trains for trips under four hours.", title="Travel"),
    ]
    ctx = build_context(hits)
    assert [c.n for c in ctx.citations] == [1, 2]
    assert [c.doc_id for c in ctx.citations] == ["leave", "travel"]
    assert ctx.text.startswith("[1] Handbook — pp. 4–5 — doc leave — chunk 3\nParental leave")
    assert "\n\n[2] Travel — p. 1 — doc travel — chunk 0\nBook trains" in ctx.text
    assert ctx.citations[0].pages == "pp. 4–5"
    assert ctx.citations[0].chunk_ids == ("leave:v1:3",)
    assert not ctx.truncated
    assert ctx.used_chunk_ids == ["leave:v1:3", "travel:v1:0"]


def test_adjacent_overlapping_chunks_merge_into_one_passage() -> None:
    a = "Employees accrue vacation monthly. Unused days carry over up to five days each year."
    b = "carry over up to five days each year. Requests go to your manager two weeks ahead."
    # chunk 8 ranked first, its predecessor second: one passage, cited once, text in order
    ctx = build_context(
        [chunk_hit("vac", 8, b, pages=(3, 3)), chunk_hit("vac", 7, a, pages=(2, 3))]
    )
    assert len(ctx.citations) == 1
    cit = ctx.citations[0]
    assert cit.chunk_indexes == (7, 8) and cit.pages == "pp. 2–3"
    assert "chunks 7–8" in ctx.text
    body = ctx.text.split("\n", 1)[1]
    assert body == (
        "Employees accrue vacation monthly. Unused days carry over up to five days each year. "
        "Requests go to your manager two weeks ahead."
    )
    assert body.count("carry over") == 1


def test_non_adjacent_chunks_and_other_versions_stay_separate() -> None:
    hits = [
        chunk_hit("doc", 1, "alpha one"),
        chunk_hit("doc", 3, "gamma three"),
        chunk_hit("doc", 2, "beta two", version="v2"),
    ]
    ctx = build_context(hits)
    assert [c.chunk_indexes for c in ctx.citations] == [(1,), (3,), (2,)]
    assert [c.version for c in ctx.citations] == ["v1", "v1", "v2"]


def test_duplicates_are_dropped() -> None:
    same = "Remote work requires a stable internet connection."
    hits = [
        chunk_hit("a", 0, same),
        chunk_hit("a", 0, same),  # the same chunk twice
        chunk_hit("copy-of-a", 0, "  remote work requires a stable   internet connection. "),
        chunk_hit("b", 0, "Something else entirely."),
    ]
    ctx = build_context(hits)
    assert [c.doc_id for c in ctx.citations] == ["a", "b"]
    assert ctx.skipped_duplicates == 2
    assert ctx.text.count("stable internet") == 1


def test_char_budget_cuts_the_last_passage_at_a_word_and_stops() -> None:
    long_text = " ".join(f"word{i}" for i in range(400))  # ~3.6k chars
    hits = [
        chunk_hit("a", 0, "short first passage"),
        chunk_hit("b", 0, long_text),
        chunk_hit("c", 0, "never reached"),
    ]
    ctx = build_context(hits, max_chars=1000)
    assert len(ctx.text) <= 1000
    assert ctx.truncated
    assert [c.doc_id for c in ctx.citations] == ["a", "b"]
    last = ctx.text.rsplit("\n", 1)[1]
    assert last.endswith(" …")
    assert all(w.startswith("word") for w in last[:-2].split())  # cut between words
    assert "never reached" not in ctx.text


def test_budget_too_small_for_a_useful_cut_leaves_the_passage_out() -> None:
    hits = [chunk_hit("a", 0, "x" * 150), chunk_hit("b", 0, "y " * 500)]
    ctx = build_context(hits, max_chars=300)
    assert [c.doc_id for c in ctx.citations] == ["a"]
    assert ctx.truncated and len(ctx.text) <= 300


def test_token_budget_with_a_custom_counter() -> None:
    def words(s: str) -> int:
        return len(s.split())

    hits = [chunk_hit("a", 0, "one two three four"), chunk_hit("b", 0, "five six seven eight")]
    ctx = build_context(hits, max_tokens=30, count_tokens=words)
    assert len(ctx.citations) == 2 and not ctx.truncated
    tight = build_context(hits, max_tokens=20, count_tokens=words)  # 15 words each
    assert [c.doc_id for c in tight.citations] == ["a"] and tight.truncated
    assert words(tight.text) <= 20


def test_missing_title_and_pages_fall_back_to_path() -> None:
    ctx = build_context([chunk_hit("notes", 2, "plain text", title=None, pages=None)])
    assert ctx.text.startswith("[1] policies/notes.pdf — doc notes — chunk 2\n")
    assert ctx.citations[0].pages is None


def test_empty_hits_and_bad_budgets() -> None:
    ctx = build_context([])
    assert ctx.text == "" and ctx.citations == [] and not ctx.truncated
    with pytest.raises(ValueError):
        build_context([], max_chars=0)
    with pytest.raises(ValueError):
        build_context([], max_tokens=0)
