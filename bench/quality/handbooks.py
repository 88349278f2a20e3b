"""The held-out question set over the two real handbooks (``handbooks.yaml``) and its metrics.

A question is labelled with one or more *answers*: a document of its handbook and a short locator
phrase in the answering passage. A retrieved chunk answers the question when it comes from one of
those documents and its text contains that answer's locator (compared after
:func:`bench.quality.metrics.normalise`). The answers are alternatives: the first rank at which
any of them is matched is the question's rank.

* recall@k: the fraction of questions answered within the top ``k`` chunks;
* MRR@k: the mean of 1/rank over questions (0 when not answered within ``k``).

Splits are fixed in the file (sha256 of the id: even first byte -> dev), so tuning on dev never
sees the test questions.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.quality import QuestionSetError, build_questions, read_question_file
from bench.quality.metrics import MAX_PHRASE_WORDS, normalise

HANDBOOKS_PATH = Path(__file__).with_name("handbooks.yaml")
SPLITS = ("dev", "test")
STYLES = ("keyword", "semantic")
NEEDS = ("number", "table")


@dataclass(frozen=True)
class Answer:
    doc: str  # "<handbook>/<file name>": unique across the two handbooks
    locator: str


@dataclass(frozen=True)
class HandbookQuestion:
    id: str
    handbook: str
    question: str
    split: str
    style: str
    answers: tuple[Answer, ...]
    needs: str | None = None
    collides: bool = False


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk as the metric sees it."""

    doc: str  # "<handbook>/<file name>"
    text: str


def split_for(question_id: str) -> str:
    """The rule the file's splits were assigned by (kept to check the file against)."""
    return "dev" if hashlib.sha256(question_id.encode()).digest()[0] % 2 == 0 else "test"


def load_handbook_questions(path: Path = HANDBOOKS_PATH) -> list[HandbookQuestion]:
    data = read_question_file(path)
    corpora = data.get("corpora")
    if not isinstance(corpora, list) or not corpora:
        raise QuestionSetError(f"{path}: 'corpora' must list the handbook directories")
    return build_questions(path, data["questions"], lambda raw: _question(raw, corpora))


def _question(raw: Any, corpora: list[str]) -> HandbookQuestion:
    if not isinstance(raw, dict):
        raise TypeError(f"expected a mapping, got {type(raw).__name__}")
    qid = str(raw["id"])
    handbook = str(raw["handbook"])
    if handbook not in corpora:
        raise ValueError(f"{qid}: handbook {handbook!r} is not one of {corpora}")
    text = str(raw["question"]).strip()
    if not text:
        raise ValueError(f"{qid}: empty question")
    split = raw["split"]
    if split not in SPLITS:
        raise ValueError(f"{qid}: split must be one of {SPLITS}, got {split!r}")
    style = raw.get("style", "semantic")
    if style not in STYLES:
        raise ValueError(f"{qid}: style must be one of {STYLES}, got {style!r}")
    needs = raw.get("needs")
    if needs is not None and needs not in NEEDS:
        raise ValueError(f"{qid}: needs must be one of {NEEDS}, got {needs!r}")
    answers = raw["answers"]
    if not isinstance(answers, list) or not answers:
        raise ValueError(f"{qid}: 'answers' must be a non-empty list")
    parsed = []
    for a in answers:
        locator = str(a["locator"])
        words = len(locator.split())
        if not 1 <= words <= MAX_PHRASE_WORDS:
            raise ValueError(f"{qid}: locator must have 1..{MAX_PHRASE_WORDS} words: {locator!r}")
        parsed.append(Answer(f"{handbook}/{a['doc']}", locator))
    return HandbookQuestion(
        id=qid,
        handbook=handbook,
        question=text,
        split=split,
        style=style,
        answers=tuple(parsed),
        needs=needs,
        collides=bool(raw.get("collides", False)),
    )


def answers(question: HandbookQuestion, passage: Passage) -> bool:
    text = normalise(passage.text)
    return any(a.doc == passage.doc and normalise(a.locator) in text for a in question.answers)


def first_rank(question: HandbookQuestion, ranked: Sequence[Passage]) -> int | None:
    """1-based rank of the first passage that answers ``question``, or None."""
    return next((i for i, p in enumerate(ranked, start=1) if answers(question, p)), None)


def recall_at(rank: int | None, k: int) -> float:
    return 1.0 if rank is not None and rank <= k else 0.0


def reciprocal_rank(rank: int | None, k: int) -> float:
    return 1.0 / rank if rank is not None and rank <= k else 0.0


_WORD = re.compile(r"[a-z0-9]+")
# function words and the handbook's own frame ("company", "employee") do not make a question
# share content with its answer
_STOP_WORDS = """a about above after again all also am an and any are as at be been before
    being below
    between both but by can could did do does doing down during each few for from further get
    got had has have having he her here hers him his how i if in into is it its itself just me
    more most my myself no nor not now of off on once only or other our ours out over own same
    she should so some such than that the their theirs them then there these they this those
    through to too under until up very was we were what when where which while who whom why
    will with would you your yours company employee employees teammate teammates"""
_STOP = frozenset(_STOP_WORDS.split())


def content_words(text: str) -> set[str]:
    """Lower-cased words minus stop words, crudely stemmed (plural s) for the overlap check."""
    words = (w for w in _WORD.findall(normalise(text)) if w not in _STOP and len(w) > 1)
    return {w[:-1] if len(w) > 3 and w.endswith("s") else w for w in words}


def locator_problems(questions: Sequence[HandbookQuestion], texts: dict[str, str]) -> list[str]:
    """Every answer's document must exist and hold its locator (``texts``: doc -> parsed text)."""
    problems = []
    for q in questions:
        for a in q.answers:
            if a.doc not in texts:
                problems.append(f"{q.id}: document {a.doc!r} is not in the corpora")
            elif normalise(a.locator) not in normalise(texts[a.doc]):
                problems.append(f"{q.id}: {a.locator!r} does not occur in {a.doc}")
    return problems
