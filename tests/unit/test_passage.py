"""What the embedding model reads for a chunk: its heading in front of its text."""

from __future__ import annotations

from datatorag.embedding.passage import passage_heading, passage_text


def test_heading_joins_title_and_section_and_drops_repeats_and_blanks() -> None:
    assert passage_heading("Benefits", "Parental leave") == "Benefits > Parental leave"
    assert passage_heading("Benefits", "benefits ") == "Benefits"
    assert passage_heading(None, "Parental leave") == "Parental leave"
    assert passage_heading("  ", None) == ""


def test_passage_text_puts_the_heading_on_its_own_line() -> None:
    assert passage_text("16 weeks.", "Benefits", "Parental leave") == (
        "Benefits > Parental leave\n16 weeks."
    )
    assert passage_text("16 weeks.", None, None) == "16 weeks."
