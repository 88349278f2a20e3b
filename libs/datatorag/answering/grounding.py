"""Checks what a provider wrote against what was retrieved, before anyone sees it as final.

* ``[n]`` markers are parsed (``[1]``, ``[1, 2]``, ``[1][2]``, before or after the full stop);
  a number that is not a retrieved source is removed and counted.
* Each sentence is checked against the sources it cites: *support* = the share of its content
  terms that the source contains, averaged with the best cosine between the sentence and one of
  the source's sentences; a number the source does not contain halves it (a changed figure is
  the most harmful hallucination in an HR answer). A sentence whose cited source does not
  support it but another retrieved source does is re-pointed to that source; one that no source
  supports is dropped (``unsupported="drop"``) or kept and listed (``"flag"``). An uncited
  factual sentence gets the source that supports it, or is treated as unsupported.
* Each citation gets a ``quote``: the sentence (or table row) of its source that best supports
  the sentences citing it, verbatim from the chunk.
* The answer abstains when the provider said the documents are silent, or when nothing
  supported is left.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from datatorag.answering.evidence import EvidenceScorer, Passage, containment
from datatorag.answering.prompt import is_abstention
from datatorag.answering.text import Unit, normalise, split_sentences, strip_markers, terms, units

_GROUP = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
_AFTER_STOP = re.compile(r"([.!?])((?:\s*\[\d+(?:\s*,\s*\d+)*\])+)")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
# A sentence with fewer content terms than this is a connective ("In short:"), not a claim.
MIN_CLAIM_TERMS = 3


@dataclass
class Grounded:
    text: str
    abstained: bool
    abstain_reason: str | None
    cited: list[int]  # citation numbers in order of first use
    quotes: dict[int, Unit]  # per citation, its best supporting unit
    removed_citations: int = 0
    repointed_citations: int = 0
    added_citations: int = 0
    unsupported: list[str] = field(default_factory=list)
    support: dict[int, float] = field(default_factory=dict)  # best support per citation
    # per citation, every unit that supports one of the sentences citing it (their chunks are
    # the citation's chunks and pages)
    evidence: dict[int, list[Unit]] = field(default_factory=dict)


def canonical_markers(text: str) -> str:
    """``claim. [1]`` -> ``claim [1].`` and ``[1, 2]`` -> ``[1][2]``: one form to parse."""
    text = _AFTER_STOP.sub(lambda m: f"{m.group(2).rstrip()}{m.group(1)}", text)
    text = _GROUP.sub(lambda m: "".join(f"[{n.strip()}]" for n in m.group(1).split(",")), text)
    text = re.sub(r"(?<=[^\s\]])(\[\d+\])", r" \1", text)  # "No[3]" -> "No [3]"
    return re.sub(r"\s+(\[\d+\])", r" \1", text).strip()


def _numbers(text: str) -> set[str]:
    return {n.replace(",", "") for n in _NUMBER.findall(strip_markers(text))}


@dataclass
class _Sentence:
    claim: str
    cites: list[int]
    end: str  # the closing punctuation


def _parse(text: str) -> list[_Sentence]:
    out = []
    for _, sentence in split_sentences(text):
        cites = [int(n) for n in re.findall(r"\[(\d+)\]", sentence)]
        body = strip_markers(sentence)
        end = body[-1] if body and body[-1] in ".!?:" else ""
        claim = body[:-1].rstrip() if end else body
        if claim:
            out.append(_Sentence(claim, cites, end))
    return out


def _render(sentences: Sequence[_Sentence]) -> str:
    parts = []
    for s in sentences:
        marks = "".join(f"[{n}]" for n in dict.fromkeys(s.cites))
        parts.append(f"{s.claim}{' ' + marks if marks else ''}{s.end}")
    return " ".join(parts)


class Grounder:
    def __init__(
        self, scorer: EvidenceScorer, *, min_support: float = 0.5, unsupported: str = "drop"
    ) -> None:
        if unsupported not in ("drop", "flag"):
            raise ValueError("unsupported must be 'drop' or 'flag'")
        self.scorer = scorer
        self.min_support = min_support
        self.policy = unsupported

    async def ground(self, tenant: str, text: str, passages: Mapping[int, Passage]) -> Grounded:
        text = canonical_markers(text)
        if is_abstention(text):
            return Grounded("", True, "model_abstained", [], {})
        sentences = _parse(text)
        removed = sum(1 for s in sentences for n in s.cites if n not in passages)
        for s in sentences:
            s.cites = [n for n in dict.fromkeys(s.cites) if n in passages]
        claims = [s for s in sentences if len(terms(s.claim)) >= MIN_CLAIM_TERMS]
        source_units = {n: units(p.text, section=p.section) for n, p in passages.items()}
        support, best_unit = await self._support(tenant, claims, passages, source_units)

        kept: list[_Sentence] = []
        unsupported: list[str] = []
        repointed = added = 0
        best_support: dict[int, float] = {}
        quote_score: dict[int, tuple[float, Unit]] = {}
        evidence: dict[int, list[Unit]] = {}
        claim_ids = {id(s): i for i, s in enumerate(claims)}
        for s in sentences:
            i = claim_ids.get(id(s))
            if i is None:  # a connective: kept as written, minus bad citations
                kept.append(s)
                continue
            row = support[i]
            ok = [n for n in s.cites if row[n] >= self.min_support]
            if not ok:
                alternative = max(row, key=lambda n: row[n], default=None)
                if alternative is not None and row[alternative] >= self.min_support:
                    if s.cites:
                        repointed += 1
                    else:
                        added += 1
                    ok = [alternative]
            if not ok:
                unsupported.append(s.claim)
                if self.policy == "flag":
                    kept.append(s)
                continue
            s.cites = ok
            kept.append(s)
            for n in ok:
                best_support[n] = max(best_support.get(n, 0.0), row[n])
                unit_score, unit = best_unit[i][n]
                if unit is not None:
                    evidence.setdefault(n, []).append(unit)
                    if unit_score > quote_score.get(n, (-1.0, unit))[0]:
                        quote_score[n] = (unit_score, unit)

        cited = list(dict.fromkeys(n for s in kept for n in s.cites))
        if not any(s.cites for s in kept):
            return Grounded(
                "",
                True,
                "unsupported",
                [],
                {},
                removed_citations=removed,
                unsupported=unsupported,
            )
        return Grounded(
            text=_render(kept),
            abstained=False,
            abstain_reason=None,
            cited=cited,
            quotes={n: u for n, (_, u) in quote_score.items()},
            removed_citations=removed,
            repointed_citations=repointed,
            added_citations=added,
            unsupported=unsupported,
            support=best_support,
            evidence=evidence,
        )

    async def _support(
        self,
        tenant: str,
        claims: Sequence[_Sentence],
        passages: Mapping[int, Passage],
        source_units: Mapping[int, list[Unit]],
    ) -> tuple[list[dict[int, float]], list[dict[int, tuple[float, Unit | None]]]]:
        """Support of every claim by every source, and the source's best unit for it."""
        support: list[dict[int, float]] = [{} for _ in claims]
        best: list[dict[int, tuple[float, Unit | None]]] = [{} for _ in claims]
        # exact quotes (the extractive answerer, or a model quoting verbatim) need no model call
        pending: list[int] = []
        for i, s in enumerate(claims):
            exact = False
            for n, us in source_units.items():
                match = next((u for u in us if _same_claim(s.claim, u.text)), None)
                if match is not None:
                    support[i][n], best[i][n] = 1.0, (1.0, match)
                    exact = True
            if not exact:
                pending.append(i)
        # a claim is checked against the sources it cites first (or all, when it cites none);
        # only a claim they do not support is checked against the other sources
        first = {i: (claims[i].cites or list(passages)) for i in pending}
        await self._score(tenant, claims, passages, source_units, first, support, best)
        second = {
            i: [n for n in passages if n not in first[i]]
            for i in pending
            if max(support[i].values(), default=0.0) < self.min_support
        }
        await self._score(tenant, claims, passages, source_units, second, support, best)
        for i in range(len(claims)):
            for n in passages:
                support[i].setdefault(n, 0.0)
                best[i].setdefault(n, (0.0, None))
        return support, best

    async def _score(
        self,
        tenant: str,
        claims: Sequence[_Sentence],
        passages: Mapping[int, Passage],
        source_units: Mapping[int, list[Unit]],
        wanted: Mapping[int, list[int]],
        support: list[dict[int, float]],
        best: list[dict[int, tuple[float, Unit | None]]],
    ) -> None:
        """Fill ``support``/``best`` for each claim index of ``wanted`` and its sources."""
        wanted = {i: ns for i, ns in wanted.items() if ns}
        if not wanted:
            return
        rows = list(wanted)
        involved = sorted({n for ns in wanted.values() for n in ns})
        all_units = [(n, u) for n in involved for u in source_units.get(n, [])]
        # the source sentences as the evidence gate embedded them (with their heading): cached
        sims = (
            await self.scorer.similarity(
                tenant,
                [claims[i].claim for i in rows],
                [(u.text, passages[n].section) for n, u in all_units],
            )
            if all_units
            else np.zeros((len(rows), 0), dtype=np.float32)
        )
        for row, i in enumerate(rows):
            claim = claims[i].claim
            numbers = _numbers(claim)
            for n in wanted[i]:
                p = passages[n]
                cols = [j for j, (m, _) in enumerate(all_units) if m == n]
                if cols:
                    j = max(cols, key=lambda c: float(sims[row, c]))
                    cosine, unit = float(sims[row, j]), all_units[j][1]
                else:
                    cosine, unit = 0.0, None
                lexical = containment(claim, f"{p.title or ''} {p.section or ''} {p.text}")
                score = 0.5 * max(cosine, 0.0) + 0.5 * lexical
                if numbers - _numbers(p.text):
                    score *= 0.5
                support[i][n] = score
                best[i][n] = (cosine, unit)


def _same_claim(claim: str, unit_text: str) -> bool:
    a, b = normalise(claim).rstrip(".!?:"), normalise(unit_text).rstrip(".!?:")
    return a == b
