"""The evaluation harness's metric definitions, the question file format, and the shipped
labelled questions of the sample corpus (every phrase is in a chunk of its labelled file, as
the product's own parser and chunker cut it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from datatorag.chunking import chunk_document, load_chunk_tokenizer
from datatorag.config import sample_corpus
from datatorag.evaluation import Label, load_questions, sample_questions
from datatorag.evaluation.harness import QuestionResult, summarise
from datatorag.evaluation.metrics import (
    Chunk,
    matches,
    ndcg_at_k,
    percentile,
    recall_at_k,
    reciprocal_rank,
)
from datatorag.parsing import parse_document

A = Label("pto.pdf", "Up to 5 days")
B = Label("handbook/remote.md", "core hours")
HIT_A = Chunk("pto.pdf", "Up to 5 days carry over.")
HIT_B = Chunk("docs/handbook/remote.md", "Core   hours are 10 to 15.")
MISS = Chunk("other.pdf", "Up to 5 days carry over.")


def test_matching_is_by_file_and_folded_phrase() -> None:
    assert matches(A, HIT_A) and matches(A, Chunk("x/pto.pdf", "up to 5 DAYS"))
    assert not matches(A, MISS) and not matches(A, Chunk("pto.pdf", "Up to 6 days"))
    assert matches(B, HIT_B) and not matches(B, Chunk("remote.md", "core hours"))
    assert matches(Label("pto.pdf"), Chunk("pto.pdf", "anything"))


def test_retrieval_metrics() -> None:
    ranked = [MISS, HIT_A, MISS, HIT_B]
    assert recall_at_k([A, B], ranked, 2) == 0.5 and recall_at_k([A, B], ranked, 4) == 1.0
    assert reciprocal_rank([A, B], ranked, 4) == 0.5
    assert reciprocal_rank([A], [MISS], 1) == 0.0
    assert ndcg_at_k([A], [HIT_A, HIT_A], 2) == 1.0  # a label counts once: never above 1
    assert ndcg_at_k([A], [MISS, HIT_A], 2) == pytest.approx(1 / 1.58496, rel=1e-4)
    assert percentile([5, 1, 3, 2, 4], 50) == 3 and percentile([1, 2], 95) == 2


def _result(qid: str, answerable: bool, abstained: bool, cits: int = 0, ok: int = 0):
    return QuestionResult(
        qid, "q", answerable, "a", abstained, None, "extractive", cits, ok,
        1.0 if answerable else None, 1.0 if answerable else None, 1.0 if answerable else None,
        10.0, 12.0, 0.5,
    )  # fmt: skip


def test_answer_and_abstention_metrics() -> None:
    s = summarise(
        [
            _result("q1", True, False, cits=2, ok=1),
            _result("q2", True, False, cits=1, ok=1),
            _result("q3", True, True),  # abstained on an answerable question
            _result("u1", False, True),
            _result("u2", False, False, cits=1),  # answered an unanswerable one
        ]
    )
    assert s["citation_precision"] == pytest.approx(2 / 3)
    assert s["answer_hit_rate"] == pytest.approx(2 / 3)
    assert s["abstention_precision"] == 0.5 and s["abstention_recall"] == 0.5


def test_question_file_errors_name_the_line(tmp_path: Path) -> None:
    cases = {
        "not json": "not JSON",
        json.dumps({"id": "a", "question": "q"}): "needs labels",
        json.dumps({"id": "a", "question": "q", "answerable": False, "labels": [{"file": "f"}]}):
            "has no labels",
        json.dumps({"id": "a", "question": "q", "labels": [{"file": "f", "phrase": ""}]}): "phrase",
        json.dumps({"id": "", "question": "q"}): "'id'",
    }  # fmt: skip
    for line, message in cases.items():
        path = tmp_path / "q.jsonl"
        path.write_text(line + "\n")
        with pytest.raises(ValueError, match=message) as info:
            load_questions(path)
        assert ":1:" in str(info.value)


def test_shipped_questions_are_labelled_against_the_sample_corpus() -> None:
    questions = load_questions(sample_questions())
    unanswerable = [q for q in questions if not q.answerable]
    assert len(questions) >= 50 and len(unanswerable) >= 10
    tokenizer = load_chunk_tokenizer()
    chunks: dict[str, list[str]] = {}
    for path in sample_corpus().iterdir():
        if path.is_file():
            doc = parse_document(path.read_bytes(), filename=path.name)
            chunks[path.name] = [
                c.text for c in chunk_document(doc, tokenizer, max_tokens=512, overlap_tokens=50)
            ]
    for q in questions:
        for label in q.labels:
            assert label.file in chunks, (q.id, label.file)
            assert any(matches(label, Chunk(label.file, t)) for t in chunks[label.file]), (
                q.id,
                label.phrase,
            )
