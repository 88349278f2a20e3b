"""How well each sentence of the retrieved sources answers the question.

``score = SEMANTIC_WEIGHT * cosine(query, sentence) + LEXICAL_WEIGHT * coverage`` where the
cosine comes from the embedding model (query prompt for the question, document prompt for the
sentence, with its section heading as title) and ``coverage`` is the weighted share of the
question's content terms the sentence (or its section heading) contains; rarer terms among the
candidate sentences weigh more, numbers and names are what BM25 is good at and what a paraphrase
loses. The same scores decide three things: which sentences the extractive answerer says, whether
retrieval found anything worth asking an LLM about (the evidence gate), and whether a sentence an
LLM wrote is supported by the chunk it cites (``support``).

Sentence embeddings are cached per tenant (the same chunks come back for related questions), so
the gate and the answerer never embed a sentence twice.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from datatorag.answering.injection import neutralise
from datatorag.answering.text import Unit, normalise, terms, units
from datatorag.ports import Embedder

SEMANTIC_WEIGHT = 0.65
LEXICAL_WEIGHT = 0.35
# A sentence that points elsewhere ("is described in the separate summary", "see the Benefits
# Overview") shares the question's words without answering it.
POINTER_PENALTY = 0.8
_POINTER = re.compile(
    r"\b(is|are) (described|explained|covered|set out) in\b|\bsee the\b|\bfor details\b",
    re.IGNORECASE,
)
# Sentences scored per question at most: the best by lexical evidence and position, so a long
# context cannot make the gate slow.
MAX_UNITS = 40


@dataclass(frozen=True)
class Passage:
    """One numbered source as the answer layer sees it: text plus where each unit came from."""

    n: int
    text: str
    title: str | None
    section: str | None
    injections_cut: int = 0


@dataclass(frozen=True)
class ScoredUnit:
    n: int  # the source it belongs to
    index: int  # its position among the source's units
    unit: Unit
    semantic: float
    lexical: float
    score: float


@dataclass
class Evidence:
    question: str
    units: list[ScoredUnit]
    query_vector: np.ndarray

    @property
    def best(self) -> float:
        return max((u.score for u in self.units), default=0.0)

    def ranked(self) -> list[ScoredUnit]:
        return sorted(self.units, key=lambda u: (-u.score, u.n, u.index))

    def of_source(self, n: int) -> list[ScoredUnit]:
        return [u for u in self.units if u.n == n]


def passage(n: int, text: str, title: str | None, section: str | None) -> Passage:
    clean, cut = _neutralised(text)
    return Passage(n, clean, title, section, cut)


# The same chunks come back for question after question: their text analysis (injection scan,
# sentence units, term bags) is done once, not on every request's path to the first token.
# Pure functions of the text, so sharing them across tenants reveals nothing.
@lru_cache(maxsize=8192)
def _neutralised(text: str) -> tuple[str, int]:
    return neutralise(text)


@lru_cache(maxsize=8192)
def _unit_texts(text: str, section: str | None) -> tuple[str, ...]:
    return tuple(u.text for u in units(text, section=section))


@lru_cache(maxsize=65536)
def _bag(text: str) -> frozenset[str]:
    return frozenset(terms(text))


class EmbeddingCache:
    """An LRU of sentence vectors keyed by (tenant, text)."""

    def __init__(self, max_entries: int = 20_000) -> None:
        self.max_entries = max_entries
        self._vectors: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()

    def get(self, key: tuple[str, str]) -> np.ndarray | None:
        vector = self._vectors.get(key)
        if vector is not None:
            self._vectors.move_to_end(key)
        return vector

    def put(self, key: tuple[str, str], vector: np.ndarray) -> None:
        self._vectors[key] = vector
        self._vectors.move_to_end(key)
        while len(self._vectors) > self.max_entries:
            self._vectors.popitem(last=False)


class _SentenceBatcher:
    """Concurrent answers' sentences go to the model together: while one forward pass runs,
    the sentences of every request that arrives meanwhile are gathered into the next one (the
    engine sorts them by length), instead of queueing one small pass per request."""

    def __init__(self, embedder: Embedder, max_batch: int = 512) -> None:
        self.embedder = embedder
        self.max_batch = max_batch
        self._pending: list[tuple[list[str], list[str | None], asyncio.Future[np.ndarray]]] = []
        self._drainer: asyncio.Task[None] | None = None

    async def embed(self, texts: list[str], titles: list[str | None]) -> np.ndarray:
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._pending.append((texts, titles, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain(), name="sentence-batcher")
        return await future

    async def _drain(self) -> None:
        while self._pending:
            batch: list[tuple[list[str], list[str | None], asyncio.Future[np.ndarray]]] = []
            size = 0
            while self._pending and (
                not batch or size + len(self._pending[0][0]) <= self.max_batch
            ):
                item = self._pending.pop(0)
                if not item[2].done():
                    batch.append(item)
                    size += len(item[0])
            if not batch:
                continue
            try:
                vectors = await self.embedder.embed_documents(
                    [t for texts, _, _ in batch for t in texts],
                    [t for _, titles, _ in batch for t in titles],
                )
            except Exception as exc:  # noqa: BLE001 - every waiter of this batch gets the error
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            offset = 0
            for texts, _, future in batch:
                if not future.done():
                    future.set_result(vectors[offset : offset + len(texts)])
                offset += len(texts)


class EvidenceScorer:
    def __init__(self, embedder: Embedder, cache: EmbeddingCache | None = None) -> None:
        self.embedder = embedder
        self._batcher = _SentenceBatcher(embedder)
        self.cache = cache or EmbeddingCache()
        # the gate and the extractive answerer score the same question back to back
        self.queries = EmbeddingCache(1024)

    async def score(
        self,
        tenant: str,
        question: str,
        passages: Sequence[Passage],
        *,
        query_vector: np.ndarray | None = None,
        max_units: int = MAX_UNITS,
    ) -> Evidence:
        # each unit is scored with its heading: "Company Match: Northwind matches 100% ..." is
        # what the sentence means in its document (lexically, the title counts too)
        candidates: list[tuple[int, int, Unit, str | None]] = []
        context: list[str] = []
        for p in passages:
            for i, u in enumerate(units(p.text, section=p.section)):
                candidates.append((p.n, i, u, p.section))
                context.append(" ".join(x for x in (p.title, p.section) if x))
        q_terms = terms(question)
        lexical = _coverage(
            q_terms, [(u.text, ctx) for (_, _, u, _), ctx in zip(candidates, context, strict=True)]
        )
        if len(candidates) > max_units:
            keep = sorted(range(len(candidates)), key=lambda j: (-lexical[j], j))[:max_units]
            keep.sort()
            candidates = [candidates[j] for j in keep]
            lexical = [lexical[j] for j in keep]
        if query_vector is None:
            query_vector = await self.query_vector(tenant, question)
        vectors = await self.vectors(tenant, [(u.text, s) for _, _, u, s in candidates])
        semantic = (vectors @ query_vector).tolist() if len(candidates) else []
        scored = [
            ScoredUnit(
                n=n,
                index=i,
                unit=u,
                semantic=float(sem),
                lexical=float(lex),
                score=combine(float(sem), float(lex))
                * (POINTER_PENALTY if _POINTER.search(u.text) else 1.0),
            )
            for (n, i, u, _), sem, lex in zip(candidates, semantic, lexical, strict=True)
        ]
        return Evidence(question, scored, query_vector)

    def coverage(self, question: str, passages: Sequence[Passage]) -> float:
        """The best lexical coverage of the question by one sentence (with its title and
        heading): the gate in front of an LLM, computed without the model."""
        items = [
            (text, " ".join(x for x in (p.title, p.section) if x))
            for p in passages
            for text in _unit_texts(p.text, p.section)
        ]
        return max(_coverage(terms(question), items), default=0.0)

    async def query_vector(self, tenant: str, question: str) -> np.ndarray:
        vector = self.queries.get((tenant, question))
        if vector is None:
            vector = (await self.embedder.embed_queries([question]))[0]
            self.queries.put((tenant, question), vector)
        return vector

    async def vectors(self, tenant: str, items: Sequence[tuple[str, str | None]]) -> np.ndarray:
        """Document-prompt vectors of ``(text, section)`` pairs, cached; the section is the
        title of models with a document prompt, and leads the text of those without one."""
        out = np.zeros((len(items), self.embedder.dim), dtype=np.float32)
        missing: list[int] = []
        for j, (text, section) in enumerate(items):
            vector = self.cache.get((tenant, f"{section}\x00{text}"))
            if vector is None:
                missing.append(j)
            else:
                out[j] = vector
        if missing:
            fresh = await self._batcher.embed(
                [_with_heading(*items[j]) for j in missing], [items[j][1] for j in missing]
            )
            for j, vector in zip(missing, fresh, strict=True):
                out[j] = vector
                text, section = items[j]
                self.cache.put((tenant, f"{section}\x00{text}"), vector)
        return out

    async def similarity(
        self, tenant: str, claims: Sequence[str], sources: Sequence[tuple[str, str | None]]
    ) -> np.ndarray:
        """Cosine similarity of claims (bare) to ``(text, section)`` source units."""
        va = await self.vectors(tenant, [(t, None) for t in claims])
        vb = await self.vectors(tenant, sources)
        result: np.ndarray = va @ vb.T
        return result


def _with_heading(text: str, section: str | None) -> str:
    return f"{section}: {text}" if section else text


def combine(semantic: float, lexical: float) -> float:
    return SEMANTIC_WEIGHT * max(semantic, 0.0) + LEXICAL_WEIGHT * lexical


def _coverage(q_terms: list[str], items: Sequence[tuple[str, str | None]]) -> list[float]:
    """Weighted share of the question's distinct terms in each item (text plus its section)."""
    wanted = list(dict.fromkeys(q_terms))
    if not wanted or not items:
        return [0.0] * len(items)
    bags = [_bag(text) | _bag(section or "") for text, section in items]
    n = len(bags)
    weights = {}
    for t in wanted:
        df = sum(1 for bag in bags if t in bag)
        idf = math.log(1 + (n + 1) / (df + 0.5))
        weights[t] = idf * (1.5 if any(ch.isdigit() for ch in t) else 1.0)
    total = sum(weights.values())
    return [sum(w for t, w in weights.items() if t in bag) / total for bag in bags]


def containment(claim: str, source: str) -> float:
    """Share of the claim's content terms that the source contains (lexical support)."""
    wanted = set(terms(claim))
    if not wanted:
        return 1.0
    have = set(terms(source))
    return len(wanted & have) / len(wanted)


def same_text(a: str, b: str) -> bool:
    return normalise(a) == normalise(b)
