"""The offline answerer: no LLM, only the retrieved text.

It scores every sentence (and table row) of the sources against the question
(``datatorag.answering.evidence``), abstains when even the best one is below ``min_evidence``
(calibrated on labelled questions; see ``AnswerSettings``), and otherwise says the best sentence
and up to ``max_sentences - 1`` more that score close to it, each followed by its ``[n]``: the
best first, then its neighbours from the same source in document order (the policy's own
order reads best), then other sources.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from datatorag.answering.evidence import Evidence, EvidenceScorer, ScoredUnit, passage
from datatorag.answering.text import normalise, terms
from datatorag.domain.errors import DataToRagError
from datatorag.ports import (
    Finished,
    GenerationEvent,
    GenerationRequest,
    Generator,
    GeneratorError,
    TextDelta,
    Usage,
)

ABSTENTION = "The documents do not say."
# A sentence joins the answer when its score is within this of the best one.
MARGIN = 0.08
MAX_WORDS = 120


class ExtractiveGenerator(Generator):
    name = "extractive"

    def __init__(
        self,
        scorer: EvidenceScorer,
        *,
        min_evidence: float = 0.45,
        max_sentences: int = 3,
    ) -> None:
        self.scorer = scorer
        self.min_evidence = min_evidence
        self.max_sentences = max_sentences
        self.model = f"extractive/{scorer.embedder.model_id}"

    async def stream(self, request: GenerationRequest) -> AsyncIterator[GenerationEvent]:
        try:
            evidence = await self.scorer.score(
                request.tenant,
                request.question,
                [passage(s.n, s.text, s.title, s.section) for s in request.sources],
            )
        except (DataToRagError, OSError, RuntimeError) as exc:
            raise GeneratorError(self.name, "unavailable", f"embedding failed: {exc}") from exc
        chosen = self.select(evidence)
        if not chosen:
            yield TextDelta(ABSTENTION)
            yield Finished(Usage(len(terms(request.question)), 5), "abstain", self.model)
            return
        words = 0
        for i, u in enumerate(chosen):
            # the citation goes before the closing stop: "... next calendar year [1]."
            body = u.unit.text.rstrip()
            end = body[-1] if body[-1] in ".!?" else "."
            body = body.rstrip(".!?").rstrip()
            text = f"{'' if i == 0 else ' '}{body} [{u.n}]{end}"
            words += len(text.split())
            yield TextDelta(text)
        read = sum(len(s.text.split()) for s in request.sources)
        yield Finished(Usage(read, words), "stop", self.model)

    def select(self, evidence: Evidence) -> list[ScoredUnit]:
        ranked = evidence.ranked()
        if not ranked or ranked[0].score < self.min_evidence:
            return []
        best = ranked[0]
        floor = max(self.min_evidence, best.score - MARGIN)
        picked = [best]
        seen = {normalise(best.unit.text)}
        words = len(best.unit.text.split())
        for u in ranked[1:]:
            if len(picked) >= self.max_sentences or u.score < floor:
                break
            key = normalise(u.unit.text)
            if key in seen or words + len(u.unit.text.split()) > MAX_WORDS:
                continue
            seen.add(key)
            picked.append(u)
            words += len(u.unit.text.split())
        first = picked[0]
        rest = sorted(picked[1:], key=lambda u: (u.n != first.n, u.n, u.index))
        return [first, *rest]

    async def check(self) -> None:
        try:
            await self.scorer.embedder.check()
        except DataToRagError as exc:
            raise GeneratorError(self.name, "unavailable", str(exc)) from exc
