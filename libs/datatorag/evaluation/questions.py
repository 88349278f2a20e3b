"""Labelled questions, one JSON object per line::

    {"id": "q01", "question": "...", "labels": [{"file": "pto.pdf", "phrase": "Up to 5 days"}]}
    {"id": "u01", "question": "...", "answerable": false}

A label names the file that answers the question (its path or base name, as the gateway reports
it in ``path``) and, optionally, a short phrase of the answering chunk. A question without
labels must say ``"answerable": false``: the documents do not answer it, and the right answer is
an abstention.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

MAX_PHRASE_WORDS = 10


@dataclass(frozen=True)
class Label:
    file: str
    phrase: str | None = None


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    labels: tuple[Label, ...] = ()
    answerable: bool = True


def sample_questions() -> Path:
    """The labelled questions for the shipped sample corpus (``samples/acme-hr``)."""
    return Path(str(resources.files("datatorag") / "samples" / "acme-hr-questions.jsonl"))


def load_questions(path: Path) -> list[Question]:
    out: list[Question] = []
    seen: set[str] = set()
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"{path}:{lineno}"
        try:
            raw = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"{where}: not JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise ValueError(f"{where}: expected an object")
        qid, text = raw.get("id"), raw.get("question")
        if not isinstance(qid, str) or not qid or qid in seen:
            raise ValueError(f"{where}: 'id' must be a unique non-empty string")
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{where}: 'question' must be a non-empty string")
        labels = []
        for item in raw.get("labels") or []:
            if not isinstance(item, dict) or not isinstance(item.get("file"), str):
                raise ValueError(f"{where}: each label needs a 'file'")
            phrase = item.get("phrase")
            if phrase is not None and (
                not isinstance(phrase, str) or not 0 < len(phrase.split()) <= MAX_PHRASE_WORDS
            ):
                raise ValueError(f"{where}: 'phrase' must have 1..{MAX_PHRASE_WORDS} words")
            labels.append(Label(item["file"], phrase))
        answerable = raw.get("answerable", True)
        if not isinstance(answerable, bool):
            raise ValueError(f"{where}: 'answerable' must be true or false")
        if answerable and not labels:
            raise ValueError(f"{where}: an answerable question needs labels")
        if not answerable and labels:
            raise ValueError(f"{where}: an unanswerable question has no labels")
        seen.add(qid)
        out.append(Question(qid, text.strip(), tuple(labels), answerable))
    if not out:
        raise ValueError(f"{path}: no questions")
    return out
