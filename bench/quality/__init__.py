"""Labelled question set and metrics for the retrieval-quality benchmark.

The corpus is read at run time from ``../shared/corpora/<name>`` next to the repository (or from
``$DATATORAG_CORPORA_DIR/<name>``); its text is never copied into the repository.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

import yaml

from bench.quality.metrics import Label, Question


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


Q = TypeVar("Q", bound=_HasId)

QUESTIONS_PATH = Path(__file__).with_name("questions.yaml")
REPO_ROOT = Path(__file__).resolve().parents[2]
CORPUS_NAME = "37signals-handbook"
CORPORA_ENV = "DATATORAG_CORPORA_DIR"
# Files in the corpus directory that are provenance notes, not handbook documents.
NOT_DOCUMENTS = frozenset({"SOURCE.txt"})


class QuestionSetError(ValueError):
    """The question file is malformed or does not fit the corpus."""


def corpus_dir(name: str = CORPUS_NAME, repo_root: Path = REPO_ROOT) -> Path:
    base = os.environ.get(CORPORA_ENV)
    root = Path(base) if base else Path(repo_root).parent / "shared" / "corpora"
    path = root / name
    if not path.is_dir():
        raise FileNotFoundError(
            f"corpus {name!r} not found at {path}; set {CORPORA_ENV} to the corpora directory"
        )
    return path


def corpus_documents(path: Path) -> list[Path]:
    """The corpus's documents in a stable order (sorted by file name)."""
    docs = sorted(p for p in path.iterdir() if p.is_file() and p.name not in NOT_DOCUMENTS)
    if not docs:
        raise FileNotFoundError(f"corpus directory {path} holds no documents")
    return docs


def read_question_file(path: Path) -> dict[str, Any]:
    """A question file's mapping, with its ``questions`` list; a clear error otherwise."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise QuestionSetError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("questions"), list):
        raise QuestionSetError(f"{path}: expected a mapping with a 'questions' list")
    return data


def build_questions(path: Path, raws: list[Any], build: Callable[[Any], Q]) -> list[Q]:
    """Each raw entry through ``build``; a bad entry or a repeated id names its position."""
    out: list[Q] = []
    seen: set[str] = set()
    for n, raw in enumerate(raws):
        where = f"{path}: questions[{n}]"
        try:
            question = build(raw)
        except (KeyError, TypeError, ValueError) as exc:
            raise QuestionSetError(f"{where}: {exc}") from exc
        if question.id in seen:
            raise QuestionSetError(f"{where}: duplicate id {question.id!r}")
        seen.add(question.id)
        out.append(question)
    return out


def load_questions(path: Path = QUESTIONS_PATH) -> list[Question]:
    return build_questions(path, read_question_file(path)["questions"], _question)


def _question(raw: Any) -> Question:
    if not isinstance(raw, dict):
        raise TypeError(f"expected a mapping, got {type(raw).__name__}")
    text = str(raw["question"]).strip()
    if not text:
        raise ValueError("empty question")
    style = raw.get("style", "keyword")
    if style not in ("keyword", "semantic"):
        raise ValueError(f"style must be keyword or semantic, got {style!r}")
    relevant = raw["relevant"]
    if not isinstance(relevant, list) or not relevant:
        raise ValueError("'relevant' must be a non-empty list")
    labels = tuple(
        Label(doc=str(r["doc"]), grade=int(r["grade"]), must_contain=r.get("must_contain"))
        for r in relevant
    )
    return Question(id=str(raw["id"]), question=text, labels=labels, style=style)


def phrase_problems(questions: list[Question], corpus: Path) -> list[str]:
    """Every label's document must exist and hold its ``must_contain`` phrase verbatim."""
    problems: list[str] = []
    texts: dict[str, str] = {}
    for q in questions:
        for label in q.labels:
            file = corpus / label.doc
            if label.doc not in texts:
                texts[label.doc] = file.read_text(encoding="utf-8") if file.is_file() else ""
            if not file.is_file():
                problems.append(f"{q.id}: document {label.doc!r} is not in {corpus}")
            elif label.must_contain is not None and label.must_contain not in texts[label.doc]:
                problems.append(f"{q.id}: {label.must_contain!r} does not occur in {label.doc}")
    return problems
