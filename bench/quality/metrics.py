"""Retrieval-quality metrics over labelled questions: recall@k and graded nDCG@k.

Definitions (the benchmark's figures mean exactly this):

* A question has labels ``(doc, grade, must_contain)``: grade 2 = the document holds the answer,
  grade 1 = related. ``must_contain`` (grade 2 only) pins the answer to a short phrase.
* A retrieved chunk ``(doc, text)`` **matches** a label when it comes from the label's document
  and, if the label has a phrase, its normalised text contains the normalised phrase
  (see :func:`normalise`: case, quotes, dashes and whitespace do not matter, so the same chunk
  counts whether it was parsed from Markdown or from a PDF).
* A chunk's **gain** (its graded relevance) is the highest grade among the labels it matches;
  a chunk from a labelled document that matches none of that document's labels (the answer
  phrase lies elsewhere in it) is related and gains 1; any other chunk gains 0.
* **recall@k** = the fraction of the question's answer labels (grade 2) matched by at least one
  of the top ``k`` chunks. With one answer label it is the hit rate; with two (the answer is in
  two documents or two passages) finding one scores 0.5.
* **nDCG@k** = DCG@k / IDCG@k with DCG@k = sum over ranks i = 1..k of (2^gain_i - 1) / log2(i + 1).
  IDCG@k is the DCG of the best possible ranking of the chunks that were actually indexed (all
  corpus chunks sorted by gain), so a perfect retriever scores 1.0 for any chunk size.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

ANSWER = 2
RELATED = 1
GRADES = (RELATED, ANSWER)
MAX_PHRASE_WORDS = 8


@dataclass(frozen=True)
class Label:
    doc: str  # file name in the corpus directory, e.g. "benefits-and-perks.md"
    grade: int
    must_contain: str | None = None

    def __post_init__(self) -> None:
        if self.grade not in GRADES:
            raise ValueError(f"label for {self.doc!r}: grade must be 1 or 2, got {self.grade!r}")
        if self.must_contain is not None:
            if self.grade != ANSWER:
                raise ValueError(f"label for {self.doc!r}: must_contain only applies to grade 2")
            words = len(self.must_contain.split())
            if words == 0 or words > MAX_PHRASE_WORDS:
                raise ValueError(
                    f"label for {self.doc!r}: must_contain must have 1..{MAX_PHRASE_WORDS} "
                    f"words, got {words}: {self.must_contain!r}"
                )


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    labels: tuple[Label, ...]
    style: str = "keyword"  # keyword | semantic

    def __post_init__(self) -> None:
        if not self.answers:
            raise ValueError(f"question {self.id}: needs at least one grade-2 label")

    @property
    def answers(self) -> tuple[Label, ...]:
        return tuple(label for label in self.labels if label.grade == ANSWER)


@dataclass(frozen=True)
class Retrieved:
    """A retrieved (or indexed) chunk as the metrics see it: its source document and text."""

    doc: str
    text: str


_TRANSLATE = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u2032": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u2033": '"',
        "\u2010": "-",
        "\u2011": "-",
        "\u2012": "-",
        "\u2013": "-",
        "\u2014": "-",
        "\u2212": "-",
        "\u00ad": None,  # soft hyphen (PDF text layers)
    }
)
_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Fold what differs between a Markdown and a PDF rendering of the same words."""
    text = unicodedata.normalize("NFKC", text).translate(_TRANSLATE)
    return _SPACE.sub(" ", text).strip().casefold()


def matches(label: Label, chunk: Retrieved) -> bool:
    if chunk.doc != label.doc:
        return False
    return label.must_contain is None or normalise(label.must_contain) in normalise(chunk.text)


def gain(question: Question, chunk: Retrieved) -> int:
    best = 0
    for label in question.labels:
        if label.doc == chunk.doc:
            best = max(best, label.grade if matches(label, chunk) else RELATED)
    return best


def recall_at_k(question: Question, ranked: Sequence[Retrieved], k: int) -> float:
    _check_k(k)
    top = ranked[:k]
    found = sum(1 for label in question.answers if any(matches(label, c) for c in top))
    return found / len(question.answers)


def dcg(gains: Iterable[int], k: int) -> float:
    _check_k(k)
    total = 0.0
    for i, g in enumerate(gains):
        if i >= k:
            break
        total += (2**g - 1) / math.log2(i + 2)
    return total


def ndcg_at_k(
    question: Question, ranked: Sequence[Retrieved], k: int, corpus: Sequence[Retrieved]
) -> float:
    """nDCG@k of ``ranked`` against the ideal ordering of every chunk in ``corpus``.

    ``corpus`` is what was indexed; when none of it is relevant the question cannot be answered
    from this index and scores 0.0 (:func:`unanswerable` names such labels).
    """
    ideal = dcg(sorted((gain(question, c) for c in corpus), reverse=True), k)
    if ideal == 0.0:
        return 0.0
    return dcg((gain(question, c) for c in ranked), k) / ideal


def unanswerable(question: Question, corpus: Sequence[Retrieved]) -> list[Label]:
    """Answer labels that no indexed chunk matches (e.g. a phrase split or mangled by parsing)."""
    return [label for label in question.answers if not any(matches(label, c) for c in corpus)]


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
