"""The held-out question set over the two real handbooks (bench/quality/handbooks.yaml): its
shape, its fixed split and every locator against the parsed corpus; and the metric helpers."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from bench.quality import QuestionSetError, corpus_dir, corpus_documents
from bench.quality.handbooks import (
    Answer,
    HandbookQuestion,
    Passage,
    content_words,
    first_rank,
    load_handbook_questions,
    locator_problems,
    recall_at,
    reciprocal_rank,
    split_for,
)
from bench.quality.metrics import normalise
from datatorag.parsing import parse_document

HANDBOOKS = ("37signals-handbook", "sourcegraph-handbook")
Q = HandbookQuestion(
    id="x1",
    handbook="h",
    question="How long is leave?",
    split="dev",
    style="semantic",
    answers=(Answer("h/a.md", "Sixteen Weeks"), Answer("h/b.md", "four months")),
)


def test_any_answer_counts_at_its_first_rank() -> None:
    ranked = [
        Passage("h/a.md", "nothing here"),
        Passage("h/c.md", "sixteen weeks"),  # right words, wrong document
        Passage("h/b.md", "up to  Four\nmonths of leave"),  # the second answer, normalised
        Passage("h/a.md", "sixteen weeks"),
    ]
    assert first_rank(Q, ranked) == 3
    assert first_rank(Q, ranked[:2]) is None
    assert recall_at(3, 5) == 1.0 and recall_at(3, 1) == 0.0 and recall_at(None, 5) == 0.0
    assert reciprocal_rank(3, 5) == pytest.approx(1 / 3) and reciprocal_rank(6, 5) == 0.0


def test_locator_problems_names_missing_document_and_phrase() -> None:
    problems = locator_problems([Q], {"h/a.md": "It lasts sixteen  weeks."})
    assert problems == ["x1: document 'h/b.md' is not in the corpora"]
    problems = locator_problems([Q], {"h/a.md": "sixteen days", "h/b.md": "four months"})
    assert problems == ["x1: 'Sixteen Weeks' does not occur in h/a.md"]


def test_bad_entry_is_named(tmp_path: Path) -> None:
    path = tmp_path / "q.yaml"
    path.write_text(
        "corpora: [h]\nquestions:\n"
        "  - {id: x, handbook: h, split: train, question: q, answers: [{doc: a, locator: b}]}\n"
    )
    with pytest.raises(QuestionSetError, match=r"questions\[0\]: x: split must be one of"):
        load_handbook_questions(path)
    path.write_text(
        "corpora: [h]\nquestions:\n"
        "  - {id: x, handbook: g, split: dev, question: q, answers: [{doc: a, locator: b}]}\n"
    )
    with pytest.raises(QuestionSetError, match="handbook 'g' is not one of"):
        load_handbook_questions(path)


# ---- the real set ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def questions() -> list[HandbookQuestion]:
    return load_handbook_questions()


@pytest.fixture(scope="module")
def parsed_texts() -> dict[str, str]:
    texts = {}
    for hb in HANDBOOKS:
        for path in corpus_documents(corpus_dir(hb)):
            doc = parse_document(path.read_bytes(), filename=path.name)
            texts[f"{hb}/{path.name}"] = "\n".join(b.text for b in doc.blocks)
    return texts


def test_set_is_large_split_and_covers_both_handbooks(questions: list[HandbookQuestion]) -> None:
    assert len(questions) >= 150
    by_handbook = Counter(q.handbook for q in questions)
    assert set(by_handbook) == set(HANDBOOKS) and min(by_handbook.values()) >= 60
    splits = Counter(q.split for q in questions)
    assert min(splits.values()) >= 0.4 * len(questions)
    assert sum(q.needs is not None for q in questions) >= 40  # figures and table rows
    assert sum(q.collides for q in questions) >= 20  # policies both handbooks have
    for hb in HANDBOOKS:  # both splits hold questions of each handbook
        assert {q.split for q in questions if q.handbook == hb} == {"dev", "test"}


def test_split_is_the_fixed_hash_rule(questions: list[HandbookQuestion]) -> None:
    wrong = [q.id for q in questions if q.split != split_for(q.id)]
    assert wrong == []


def test_every_locator_occurs_in_its_parsed_document(
    questions: list[HandbookQuestion], parsed_texts: dict[str, str]
) -> None:
    assert locator_problems(questions, parsed_texts) == []


def test_most_questions_share_no_content_word_with_their_locator(
    questions: list[HandbookQuestion],
) -> None:
    names = {"37signal", "sourcegraph"}
    paraphrased = [
        q
        for q in questions
        if any(
            not (content_words(q.question) - names) & content_words(a.locator) for a in q.answers
        )
    ]
    assert len(paraphrased) >= 0.6 * len(questions)


def test_questions_are_not_copied_from_the_handbooks(
    questions: list[HandbookQuestion], parsed_texts: dict[str, str]
) -> None:
    corpus = normalise(" ".join(parsed_texts.values()))
    copied = [q.id for q in questions if normalise(q.question) in corpus]
    assert copied == []
