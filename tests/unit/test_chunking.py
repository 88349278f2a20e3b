"""Chunking with the real all-MiniLM-L6-v2 tokenizer."""

from __future__ import annotations

from itertools import pairwise

import pytest

from datatorag.chunking import chunk_document, load_chunk_tokenizer
from datatorag.embedding.engine import load_tokenizer
from datatorag.parsing import Block, ParsedDocument, parse_document
from tests.fixtures import documents as docs


class _Counting:
    """The raw tokenizer plus the HF-style call the assertions use to count tokens."""

    def __init__(self, raw) -> None:
        self.backend_tokenizer = raw

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict:
        return {
            "input_ids": self.backend_tokenizer.encode(
                text, add_special_tokens=add_special_tokens
            ).ids
        }


@pytest.fixture(scope="module")
def tok():
    # tokenizer.json of all-MiniLM-L6-v2, without the transformers import (see the last test)
    return _Counting(load_chunk_tokenizer())


@pytest.fixture(scope="module")
def handbook() -> ParsedDocument:
    return parse_document(docs.text_pdf(6, table_page=4), filename="handbook.pdf")


def real_len(tok, text: str) -> int:
    return len(tok(text)["input_ids"])  # special tokens included


@pytest.mark.parametrize(("max_tokens", "overlap"), [(512, 50), (128, 20), (48, 10), (24, 0)])
def test_every_chunk_fits_by_the_real_tokenizer(tok, handbook, max_tokens, overlap) -> None:
    chunks = chunk_document(handbook, tok, max_tokens=max_tokens, overlap_tokens=overlap)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    for c in chunks:
        assert c.text.strip() == c.text and c.text
        assert c.token_count == real_len(tok, c.text) <= max_tokens
    # nothing is lost: every page marker lands in some chunk
    joined = "\n".join(c.text for c in chunks)
    for page in range(1, 7):
        assert docs.page_marker(page) in joined or max_tokens < 32


def test_special_tokens_leave_room(tok) -> None:
    doc = ParsedDocument("t", "text", None, [Block(" ".join(["word"] * 300), None, None, "text")])
    chunks = chunk_document(doc, tok, max_tokens=64, overlap_tokens=0)
    # 300 one-token words, 62 per chunk once [CLS] and [SEP] are counted: 4 x 62 + 52
    assert [c.token_count for c in chunks] == [64, 64, 64, 64, 54]


def test_title_section_and_pages_travel_with_chunks(tok, handbook) -> None:
    chunks = chunk_document(handbook, tok, max_tokens=128, overlap_tokens=20)
    assert all(c.title == docs.PDF_TITLE for c in chunks)
    for page in range(1, 7):
        holding = [c for c in chunks if docs.page_marker(page) in c.text]
        assert holding, page
        for c in holding:
            assert c.section == docs.section_heading(page)
            assert c.page_start == page == c.page_end  # each section sits on one page


def test_chunks_never_cross_sections(tok, handbook) -> None:
    chunks = chunk_document(handbook, tok, max_tokens=512, overlap_tokens=50)
    for c in chunks:
        others = [
            docs.section_heading(p) for p in range(1, 7) if docs.section_heading(p) != c.section
        ]
        assert not any(h in c.text for h in others)
    # each section's heading opens its first chunk
    firsts = {}
    for c in chunks:
        firsts.setdefault(c.section, c)
    for section, c in firsts.items():
        assert c.text.startswith(section)


def test_overlap_repeats_the_end_of_the_previous_chunk(tok) -> None:
    text = " ".join(docs.paragraphs(11, 1, 40))
    doc = ParsedDocument("t", "text", None, [Block(text, None, "S", "text")])
    chunks = chunk_document(doc, tok, max_tokens=100, overlap_tokens=30)
    assert len(chunks) > 3
    for a, b in pairwise(chunks):
        shared = _shared(a.text, b.text)
        assert shared, (a.text[-80:], b.text[:80])
        n = len(tok(shared, add_special_tokens=False)["input_ids"])
        assert 30 // 2 <= n <= 30


def test_no_overlap_when_disabled(tok) -> None:
    text = " ".join(docs.paragraphs(12, 1, 30))
    doc = ParsedDocument("t", "text", None, [Block(text, None, None, "text")])
    chunks = chunk_document(doc, tok, max_tokens=80, overlap_tokens=0)
    assert " ".join(c.text for c in chunks) == text


def test_no_overlap_across_a_section_boundary(tok) -> None:
    a, b = docs.paragraphs(13, 2, 8)
    doc = ParsedDocument(
        "t",
        "text",
        None,
        [
            Block("Alpha", None, "Alpha", "heading"),
            Block(a, None, "Alpha", "text"),
            Block("Beta", None, "Beta", "heading"),
            Block(b, None, "Beta", "text"),
        ],
    )
    chunks = chunk_document(doc, tok, max_tokens=512, overlap_tokens=50)
    assert [(c.section, c.text) for c in chunks] == [
        ("Alpha", f"Alpha\n\n{a}"),
        ("Beta", f"Beta\n\n{b}"),
    ]


def test_a_lone_heading_joins_the_next_section(tok) -> None:
    doc = ParsedDocument(
        "t",
        "markdown",
        None,
        [
            Block("Benefits", None, "Benefits", "heading"),
            Block("Medical Plans", None, "Medical Plans", "heading"),
            Block("Three plans are offered.", None, "Medical Plans", "text"),
        ],
    )
    chunks = chunk_document(doc, tok)
    assert len(chunks) == 1
    assert chunks[0].text == "Benefits\n\nMedical Plans\n\nThree plans are offered."
    assert chunks[0].section == "Medical Plans"


def test_a_scrap_section_joins_the_next_but_a_long_sections_tail_does_not(tok) -> None:
    body = " ".join(docs.paragraphs(15, 1, 12))
    doc = ParsedDocument(
        "t",
        "html",
        None,
        [
            Block("Owner: People Team", None, None, "text"),  # byline before the first heading
            Block("Travel", None, "Travel", "heading"),
            Block(body, None, "Travel", "text"),
            Block("Short tail.", None, "Travel", "text"),
            Block("Meals", None, "Meals", "heading"),
            Block("Meals are paid.", None, "Meals", "text"),
        ],
    )
    chunks = chunk_document(doc, tok, max_tokens=128, overlap_tokens=0)
    assert chunks[0].text.startswith("Owner: People Team\n\nTravel\n\n")
    assert chunks[0].section == "Travel"
    # the long section's small last chunk stays in its section; the last section stays alone
    assert chunks[-2].section == "Travel" and chunks[-2].text.endswith("Short tail.")
    assert (chunks[-1].section, chunks[-1].text) == ("Meals", "Meals\n\nMeals are paid.")


def test_whole_paragraph_moves_to_next_chunk(tok) -> None:
    p1, p2 = docs.paragraphs(14, 2, 4)
    doc = ParsedDocument(
        "t", "text", None, [Block(p1, 1, None, "text"), Block(p2, 2, None, "text")]
    )
    # the second paragraph would fit the first chunk's free room only in part
    n1, n2 = real_len(tok, p1), real_len(tok, p2)
    assert n2 > 40
    chunks = chunk_document(doc, tok, max_tokens=max(n1, n2) + 20, overlap_tokens=0)
    assert [c.text for c in chunks] == [p1, p2]
    assert [(c.page_start, c.page_end) for c in chunks] == [(1, 1), (2, 2)]


def test_oversize_sentence_is_cut_by_tokens(tok) -> None:
    sentence = " ".join(f"item{i}" for i in range(600))  # no sentence end anywhere
    doc = ParsedDocument("t", "text", None, [Block(sentence, 3, None, "text")])
    chunks = chunk_document(doc, tok, max_tokens=128, overlap_tokens=16)
    assert len(chunks) > 5
    assert all(real_len(tok, c.text) <= 128 for c in chunks)
    assert all(c.page_start == c.page_end == 3 for c in chunks)
    assert chunks[0].text.startswith("item0 ") and chunks[-1].text.endswith("item599")
    # cuts fall between words
    words = set(sentence.split())
    assert all(set(c.text.split()) <= words for c in chunks)


def test_page_range_of_a_chunk_spanning_pages(tok) -> None:
    doc = ParsedDocument(
        "t",
        "pdf",
        3,
        [
            Block("Short one.", 1, "S", "text"),
            Block("Short two.", 2, "S", "text"),
            Block("Short three.", 3, "S", "text"),
        ],
    )
    [chunk] = chunk_document(doc, tok)
    assert (chunk.page_start, chunk.page_end) == (1, 3)
    assert chunk.text == "Short one.\n\nShort two.\n\nShort three."


def test_table_rows_stay_rows(tok, handbook) -> None:
    chunks = chunk_document(handbook, tok)
    table = "\n".join(" | ".join(r) for r in docs.TABLE_ROWS)
    holding = [c for c in chunks if table in c.text]
    assert len(holding) == 1 and holding[0].page_start == 4


def test_empty_document_gives_no_chunks(tok) -> None:
    assert (
        chunk_document(ParsedDocument(None, "text", None, [Block("  ", None, None, "text")]), tok)
        == []
    )


def test_budget_too_small_is_refused(tok) -> None:
    doc = ParsedDocument(None, "text", None, [Block("x", None, None, "text")])
    with pytest.raises(ValueError):
        chunk_document(doc, tok, max_tokens=5)


def test_hf_tokenizer_and_tokenizer_json_agree(handbook) -> None:
    hf = load_tokenizer()  # the embedding model's tokenizer as the embedder loads it
    via_hf = chunk_document(handbook, hf, max_tokens=128, overlap_tokens=20)
    via_raw = chunk_document(handbook, load_chunk_tokenizer(), max_tokens=128, overlap_tokens=20)
    assert via_raw == via_hf
    assert all(len(hf(c.text)["input_ids"]) == c.token_count <= 128 for c in via_hf)


def test_non_additive_tokenizer_is_recounted(handbook) -> None:
    """A pre-tokenizer the chunker cannot prove additive: counts come from a re-tokenisation."""
    from tokenizers import Tokenizer, pre_tokenizers

    from datatorag.chunking import _adapter, _recut

    raw = Tokenizer.from_str(load_chunk_tokenizer().to_str())
    raw.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    assert not _adapter(raw).additive
    chunks = chunk_document(handbook, raw, max_tokens=96, overlap_tokens=12)
    for c in chunks:
        assert c.token_count == len(raw.encode(c.text).ids) <= 96
    # the safety net: an over-long text is cut until every piece measures within the limit
    long_text = " ".join(docs.paragraphs(21, 3, 6))
    pieces = _recut(long_text, _adapter(raw), 64)
    assert len(pieces) > 3
    assert all(n == len(raw.encode(t).ids) <= 64 for t, n in pieces)
    assert " ".join(t for t, _ in pieces).split() == long_text.split()


def _shared(a: str, b: str) -> str:
    """Longest suffix of ``a`` that is a prefix of ``b``."""
    for n in range(min(len(a), len(b)), 0, -1):
        if a.endswith(b[:n]):
            return b[:n]
    return ""
