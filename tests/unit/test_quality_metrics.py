"""Retrieval-quality metrics (hand-computed examples) and the labelled question set itself."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from bench.quality import (
    QuestionSetError,
    corpus_dir,
    corpus_documents,
    load_questions,
    phrase_problems,
)
from bench.quality.metrics import (
    Label,
    Question,
    Retrieved,
    dcg,
    gain,
    matches,
    ndcg_at_k,
    normalise,
    recall_at_k,
    unanswerable,
)

Q = Question(
    id="t1",
    question="what is the answer?",
    labels=(Label("a.md", 2, "the answer is 42"), Label("b.md", 1)),
)
RELATED_B = Retrieved("b.md", "background on the topic")
OTHER_A = Retrieved("a.md", "a passage of a.md without the phrase")
ANSWER_A = Retrieved("a.md", "Intro.\nThe  Answer\nis 42, as everyone knows.")
NOISE = Retrieved("c.md", "the answer is 42")  # right words, wrong document: not a hit


# ---- gains and matching ---------------------------------------------------------------------


def test_gain_grades_answer_partial_related_and_noise() -> None:
    assert gain(Q, ANSWER_A) == 2
    assert gain(Q, OTHER_A) == 1  # from the answer document, phrase elsewhere: related
    assert gain(Q, RELATED_B) == 1
    assert gain(Q, NOISE) == 0


def test_normalise_folds_pdf_and_markdown_differences() -> None:
    label = Label("x.md", 2, "We don't offer a bank - ever")
    pdf_text = "We don\u2019t\r\noffer a\u00a0bank \u2013 ever"
    assert normalise(pdf_text) == "we don't offer a bank - ever"
    assert matches(label, Retrieved("x.md", pdf_text))
    assert not matches(label, Retrieved("x.md", "we do offer a bank"))


# ---- recall ---------------------------------------------------------------------------------


def test_recall_counts_only_answer_labels_within_k() -> None:
    ranked = [RELATED_B, OTHER_A, ANSWER_A, NOISE]
    assert recall_at_k(Q, ranked, 2) == 0.0  # related chunks are not answers
    assert recall_at_k(Q, ranked, 3) == 1.0
    assert recall_at_k(Q, [NOISE], 5) == 0.0


def test_recall_with_two_answer_labels_scores_the_fraction_found() -> None:
    q = Question(
        id="t2",
        question="two places",
        labels=(Label("a.md", 2, "first fact"), Label("b.md", 2, "second fact")),
    )
    first = Retrieved("a.md", "the first fact")
    second = Retrieved("b.md", "the second fact")
    assert recall_at_k(q, [first, NOISE], 5) == 0.5
    assert recall_at_k(q, [second, first], 5) == 1.0
    assert recall_at_k(q, [second, first], 1) == 0.5


# ---- nDCG -----------------------------------------------------------------------------------


def test_dcg_hand_computed() -> None:
    # gains 2,0,1 -> 3/log2(2) + 0 + 1/log2(4) = 3 + 0.5
    assert dcg([2, 0, 1], 10) == pytest.approx(3.5)
    assert dcg([2, 0, 1], 1) == pytest.approx(3.0)
    assert dcg([], 5) == 0.0


def test_ndcg_hand_computed_against_the_ideal_of_the_indexed_corpus() -> None:
    ranked = [RELATED_B, OTHER_A, ANSWER_A, NOISE]
    corpus = [NOISE, OTHER_A, RELATED_B, ANSWER_A]
    # DCG@3 = 1/log2(2) + 1/log2(3) + 3/log2(4) = 1 + 0.630930 + 1.5 = 3.130930
    # ideal gains [2, 1, 1, 0]: IDCG@3 = 3 + 1/log2(3) + 1/2 = 4.130930; ratio 0.757924
    assert ndcg_at_k(Q, ranked, 3, corpus) == pytest.approx(0.757924, abs=1e-6)
    assert ndcg_at_k(Q, ranked, 3, corpus) == pytest.approx(
        (1 + 1 / math.log2(3) + 1.5) / (3 + 1 / math.log2(3) + 0.5)
    )
    # the ideal ranking scores 1, a ranking of noise scores 0
    assert ndcg_at_k(Q, [ANSWER_A, OTHER_A, RELATED_B], 10, corpus) == pytest.approx(1.0)
    assert ndcg_at_k(Q, [NOISE], 10, corpus) == 0.0
    # answer at rank 2 after one noise chunk: 3/log2(3) / (3 + 1/log2(3) + 1/2) at k=3
    assert ndcg_at_k(Q, [NOISE, ANSWER_A], 3, corpus) == pytest.approx(
        (3 / math.log2(3)) / (3 + 1 / math.log2(3) + 0.5)
    )


def test_question_without_relevant_indexed_chunk_is_unanswerable_and_scores_zero() -> None:
    corpus = [NOISE, OTHER_A]  # the answer phrase was lost (e.g. mangled by parsing)
    assert unanswerable(Q, corpus) == [Q.labels[0]]
    assert unanswerable(Q, [*corpus, ANSWER_A]) == []
    assert ndcg_at_k(Q, [NOISE], 10, [NOISE]) == 0.0


# ---- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Label("a.md", 3), "grade must be 1 or 2"),
        (lambda: Label("a.md", 1, "phrase"), "only applies to grade 2"),
        (lambda: Label("a.md", 2, "one two three four five six seven eight nine"), "1..8 words"),
        (lambda: Question("x", "q?", (Label("a.md", 1),)), "at least one grade-2 label"),
        (lambda: recall_at_k(Q, [], 0), "k must be >= 1"),
    ],
)
def test_bad_input_gets_a_precise_error(make, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        make()


def test_load_questions_names_the_bad_entry(tmp_path: Path) -> None:
    bad = tmp_path / "q.yaml"
    bad.write_text(
        "questions:\n"
        "  - {id: a, question: 'fine?', relevant: [{doc: a.md, grade: 2}]}\n"
        "  - {id: b, question: 'broken?', relevant: [{doc: a.md, grade: 5}]}\n"
    )
    with pytest.raises(QuestionSetError, match=r"questions\[1\]: .*grade must be 1 or 2"):
        load_questions(bad)
    dup = tmp_path / "dup.yaml"
    dup.write_text(
        "questions:\n"
        "  - {id: a, question: 'one?', relevant: [{doc: a.md, grade: 2}]}\n"
        "  - {id: a, question: 'two?', relevant: [{doc: a.md, grade: 2}]}\n"
    )
    with pytest.raises(QuestionSetError, match="duplicate id 'a'"):
        load_questions(dup)
    broken = tmp_path / "broken.yaml"
    broken.write_text("questions: [\n")
    with pytest.raises(QuestionSetError, match="not valid YAML"):
        load_questions(broken)


def test_phrase_problems_reports_missing_phrase_and_document(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("The sabbatical lasts six weeks.")
    questions = [
        Question("ok", "?", (Label("a.md", 2, "lasts six weeks"),)),
        Question("typo", "?", (Label("a.md", 2, "lasts 6 weeks"),)),
        Question("gone", "?", (Label("z.md", 2),)),
    ]
    problems = phrase_problems(questions, tmp_path)
    assert problems == [
        "typo: 'lasts 6 weeks' does not occur in a.md",
        f"gone: document 'z.md' is not in {tmp_path}",
    ]


# ---- the real question set against the real corpus ------------------------------------------


@pytest.fixture(scope="module")
def handbook() -> Path:
    return corpus_dir()


def test_question_set_is_large_and_mixed() -> None:
    questions = load_questions()
    assert len(questions) >= 40
    styles = [q.style for q in questions]
    assert styles.count("keyword") >= 15 and styles.count("semantic") >= 15
    assert any(len(q.labels) > 1 for q in questions)  # graded: related documents too


def test_every_label_names_a_corpus_document_and_its_phrase_occurs_there(handbook: Path) -> None:
    questions = load_questions()
    assert phrase_problems(questions, handbook) == []
    names = {p.name for p in corpus_documents(handbook)}
    assert {label.doc for q in questions for label in q.labels} <= names


def test_phrases_carry_no_markdown_markup() -> None:
    # the parser strips markup, so a phrase spanning it could never match a parsed chunk
    for q in load_questions():
        for label in q.answers:
            if label.must_contain:
                assert not set(label.must_contain) & set("*_`[]#|"), (q.id, label.must_contain)


def test_questions_are_not_copied_from_the_handbook(handbook: Path) -> None:
    text = normalise(" ".join(p.read_text(encoding="utf-8") for p in corpus_documents(handbook)))
    copied = [q.id for q in load_questions() if normalise(q.question.rstrip("?")) in text]
    assert copied == []


# ---- the benchmark's corpus preparation -------------------------------------------------------


def test_markdown_rendered_as_pdf_parses_back_with_heading_table_and_phrase() -> None:
    from bench.bench_quality import markdown_to_pdf
    from datatorag.parsing import parse_document

    md = (
        "# Leave Policy\n\n## Sabbatical\n\nEvery three years you may take a 6\u2011week paid "
        "sabbatical \u2013 tell your team\u2019s lead early.\n\n"
        "| Level | Expectation |\n| --- | --- |\n| Junior | Shadows on call shifts. |\n"
        "| Senior | Leads incident response. |\n"
    )
    doc = parse_document(markdown_to_pdf(md, title="Leave Policy"), filename="leave.pdf")
    assert doc.doc_type == "pdf"
    kinds = {b.kind for b in doc.blocks}
    assert {"heading", "table"} <= kinds
    assert "Sabbatical" in {b.text for b in doc.blocks if b.kind == "heading"}
    label = Label("leave.md", 2, "6-week paid sabbatical - tell your team's")
    assert matches(label, Retrieved("leave.md", doc.text))
    assert "Shadows on call shifts" in doc.text


def test_chunking_is_capped_like_the_parser_worker() -> None:
    from bench.bench_quality import effective_chunking

    # MiniLM's window is 256 tokens: settings 512/50 become 256/50, overlap <= a quarter
    settings = effective_chunking("s", 512, 50, 256)
    assert (settings.max_tokens, settings.overlap_tokens) == (256, 50)
    small = effective_chunking("s", 128, 50, 256)
    assert (small.max_tokens, small.overlap_tokens) == (128, 32)
