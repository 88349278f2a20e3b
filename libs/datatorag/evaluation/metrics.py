"""What the evaluation's figures mean.

* A retrieved (or cited) chunk **matches** a label when its file is the label's file (compared
  by path, or by base name when the label has no folder) and, if the label has a phrase, its
  text contains the phrase (case, curly quotes, dashes and whitespace folded).
* **recall@k**: the share of a question's labels matched by at least one of the top k chunks.
* **MRR**: 1 / the rank of the first chunk that matches any label (0 when none of the top k).
* **nDCG@k**: binary gains; a chunk gains 1 when it matches a label that no higher-ranked chunk
  matched, so the ideal ranking (IDCG) is min(labels, k) gains at the top and nDCG <= 1.
* **citation precision**: over all citations of answers (answerable questions that were not
  abstained on), the share whose cited chunk matches one of the question's labels.
* **answer hit rate**: the share of answerable questions whose answer cites at least one
  matching chunk.
* **abstention precision / recall**: unanswerable questions are the positives; precision is the
  share of abstentions that were on unanswerable questions, recall the share of unanswerable
  questions abstained on.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from datatorag.evaluation.questions import Label

_FOLD = str.maketrans({"‘": "'", "’": "'", "“": '"', "”": '"', "–": "-", "—": "-", "\u00ad": None})
_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).translate(_FOLD)
    return _SPACE.sub(" ", text).strip().casefold()


@dataclass(frozen=True)
class Chunk:
    path: str
    text: str


def same_file(label_file: str, path: str) -> bool:
    if "/" in label_file:
        return path == label_file or path.endswith("/" + label_file)
    return path.rsplit("/", 1)[-1] == label_file


def matches(label: Label, chunk: Chunk) -> bool:
    if not same_file(label.file, chunk.path):
        return False
    return label.phrase is None or normalise(label.phrase) in normalise(chunk.text)


def recall_at_k(labels: Sequence[Label], ranked: Sequence[Chunk], k: int) -> float:
    top = ranked[:k]
    return sum(1 for lb in labels if any(matches(lb, c) for c in top)) / len(labels)


def reciprocal_rank(labels: Sequence[Label], ranked: Sequence[Chunk], k: int) -> float:
    for rank, chunk in enumerate(ranked[:k], start=1):
        if any(matches(lb, chunk) for lb in labels):
            return 1.0 / rank
    return 0.0


def ndcg_at_k(labels: Sequence[Label], ranked: Sequence[Chunk], k: int) -> float:
    found: set[int] = set()
    dcg = 0.0
    for rank, chunk in enumerate(ranked[:k], start=1):
        new = [i for i, lb in enumerate(labels) if i not in found and matches(lb, chunk)]
        if new:
            found.add(new[0])
            dcg += 1.0 / math.log2(rank + 1)
    ideal = sum(1.0 / math.log2(r + 1) for r in range(1, min(len(labels), k) + 1))
    return dcg / ideal if ideal else 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]
