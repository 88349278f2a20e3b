"""Run labelled questions through a gateway: ``/v1/search`` for retrieval, ``/v1/answer`` for
answers, and summarise (definitions in ``datatorag.evaluation.metrics``)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from statistics import fmean
from typing import Any

import httpx

from datatorag.evaluation.metrics import (
    Chunk,
    matches,
    ndcg_at_k,
    percentile,
    recall_at_k,
    reciprocal_rank,
)
from datatorag.evaluation.questions import Question


class EvalError(Exception):
    """The gateway refused or failed a request of the evaluation."""


@dataclass
class QuestionResult:
    id: str
    question: str
    answerable: bool
    answer: str
    abstained: bool
    abstain_reason: str | None
    provider: str
    citations: int
    correct_citations: int
    recall: float | None  # retrieval metrics: answerable questions only
    rr: float | None
    ndcg: float | None
    answer_ms: float  # the gateway's took_ms
    wall_ms: float  # as the client saw it
    confidence: float


@dataclass
class EvalReport:
    k: int
    results: list[QuestionResult]
    summary: dict[str, Any] = field(default_factory=dict)

    def table(self) -> str:
        s = self.summary
        rows = [
            ("questions (answerable / unanswerable)", f"{s['answerable']} / {s['unanswerable']}"),
            (f"retrieval recall@{self.k}", _f(s["recall_at_k"])),
            (f"retrieval MRR@{self.k}", _f(s["mrr"])),
            (f"retrieval nDCG@{self.k}", _f(s["ndcg_at_k"])),
            ("citation precision", _f(s["citation_precision"])),
            ("answer hit rate", _f(s["answer_hit_rate"])),
            ("abstention precision", _f(s["abstention_precision"])),
            ("abstention recall", _f(s["abstention_recall"])),
            (
                "answer latency p50 / p95 (ms)",
                f"{s['latency_p50_ms']:.0f} / {s['latency_p95_ms']:.0f}",
            ),
            ("providers", ", ".join(f"{k} {v}" for k, v in s["providers"].items())),
        ]
        width = max(len(r[0]) for r in rows)
        lines = [f"| {'metric'.ljust(width)} | value |", f"|{'-' * (width + 2)}|-------|"]
        lines += [f"| {name.ljust(width)} | {value} |" for name, value in rows]
        return "\n".join(lines)

    def misses(self) -> list[str]:
        """One line per question the answer layer got wrong (for a human to look at)."""
        out = []
        for r in self.results:
            if r.answerable and r.abstained:
                out.append(
                    f"{r.id}: abstained ({r.abstain_reason}, {r.confidence:.3f}): {r.question}"
                )
            elif r.answerable and r.citations and r.correct_citations == 0:
                out.append(f"{r.id}: no correct citation: {r.question} -> {r.answer[:160]}")
            elif not r.answerable and not r.abstained:
                out.append(
                    f"{r.id}: answered an unanswerable question ({r.confidence:.3f}): "
                    f"{r.answer[:160]}"
                )
        return out

    def to_json(self) -> str:
        return json.dumps(
            {"k": self.k, "summary": self.summary, "results": [asdict(r) for r in self.results]},
            indent=2,
        )


def _f(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


async def _post(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = await client.post(path, json=body)
    if resp.status_code != 200:
        raise EvalError(f"{path}: HTTP {resp.status_code}: {resp.text[:300]}")
    data: dict[str, Any] = resp.json()
    return data


async def run_question(client: httpx.AsyncClient, q: Question, k: int) -> QuestionResult:
    search = await _post(client, "/v1/search", {"query": q.question, "k": k})
    ranked = [Chunk(h["citation"]["path"], h["text"]) for h in search["hits"]]
    texts = {h["id"]: Chunk(h["citation"]["path"], h["text"]) for h in search["hits"]}
    started = time.perf_counter()
    answer = await _post(client, "/v1/answer", {"query": q.question, "k": k})
    wall_ms = (time.perf_counter() - started) * 1000
    correct = 0
    for c in answer["citations"]:
        chunks = [
            texts.get(cid) or Chunk(c["path"], c.get("quote") or "") for cid in c["chunk_ids"]
        ]
        if any(matches(lb, ch) for lb in q.labels for ch in chunks):
            correct += 1
    return QuestionResult(
        id=q.id,
        question=q.question,
        answerable=q.answerable,
        answer=answer["answer"],
        abstained=answer["abstained"],
        abstain_reason=answer["abstain_reason"],
        provider=answer["provider"],
        citations=len(answer["citations"]),
        correct_citations=correct,
        recall=recall_at_k(q.labels, ranked, k) if q.answerable else None,
        rr=reciprocal_rank(q.labels, ranked, k) if q.answerable else None,
        ndcg=ndcg_at_k(q.labels, ranked, k) if q.answerable else None,
        answer_ms=float(answer["took_ms"]),
        wall_ms=wall_ms,
        confidence=float(answer.get("confidence", 0.0)),
    )


def summarise(results: Sequence[QuestionResult]) -> dict[str, Any]:
    answerable = [r for r in results if r.answerable]
    unanswerable = [r for r in results if not r.answerable]
    answered = [r for r in answerable if not r.abstained]
    citations = sum(r.citations for r in answered)
    abstained = [r for r in results if r.abstained]
    true_abstentions = sum(1 for r in abstained if not r.answerable)
    providers: dict[str, int] = {}
    for r in results:
        providers[r.provider] = providers.get(r.provider, 0) + 1

    def mean(values: list[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return fmean(known) if known else None

    latencies = [r.answer_ms for r in results]
    return {
        "questions": len(results),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "recall_at_k": mean([r.recall for r in answerable]),
        "mrr": mean([r.rr for r in answerable]),
        "ndcg_at_k": mean([r.ndcg for r in answerable]),
        "citation_precision": (
            sum(r.correct_citations for r in answered) / citations if citations else None
        ),
        "answer_hit_rate": (
            sum(1 for r in answered if r.correct_citations) / len(answerable)
            if answerable
            else None
        ),
        "abstention_precision": true_abstentions / len(abstained) if abstained else None,
        "abstention_recall": true_abstentions / len(unanswerable) if unanswerable else None,
        "latency_p50_ms": percentile(latencies, 50),
        "latency_p95_ms": percentile(latencies, 95),
        "providers": providers,
    }


async def run_eval(
    client: httpx.AsyncClient, questions: Sequence[Question], *, k: int = 5
) -> EvalReport:
    """Questions one at a time (latency figures are then per request, not under load)."""
    if not 1 <= k <= 20:
        raise ValueError("k must be 1..20")
    results = [await run_question(client, q, k) for q in questions]
    return EvalReport(k=k, results=results, summary=summarise(results))
