"""What every engine shares: encode statistics and batches formed by a token budget."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from datatorag.embedding.model_dir import ModelSpec
from datatorag.observability import metrics
from datatorag.observability.log import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class EncodeStats:
    texts: int
    tokens: int
    padded_tokens: int
    batches: int
    seconds: float


class Engine(Protocol):
    """A synchronous encoder of prompt-formatted inputs (torch or ONNX Runtime)."""

    spec: ModelSpec
    model_id: str
    dim: int
    max_seq: int
    device: str
    backend: str

    def document_inputs(
        self, texts: Sequence[str], titles: Sequence[str | None] | None
    ) -> list[str]: ...

    def query_inputs(self, texts: Sequence[str]) -> list[str]: ...

    def token_lengths(self, inputs: Sequence[str]) -> list[int]: ...

    def encode(self, inputs: Sequence[str]) -> tuple[np.ndarray, EncodeStats]: ...


class PromptedEngine:
    """What both engines share: the model's prompts around the texts, and the load line."""

    spec: ModelSpec
    model_id: str
    dim: int
    max_seq: int

    def document_inputs(
        self, texts: Sequence[str], titles: Sequence[str | None] | None
    ) -> list[str]:
        return document_inputs(self.spec, texts, titles)

    def query_inputs(self, texts: Sequence[str]) -> list[str]:
        return query_inputs(self.spec, texts)

    def _log_loaded(self, started: float, **fields: object) -> None:
        log.info(
            "embedding model loaded",
            model=self.model_id,
            **fields,
            dim=self.dim,
            max_seq=self.max_seq,
            seconds=round(time.perf_counter() - started, 2),
        )


def encoded(n: int, lengths: np.ndarray, padded: int, batches: int, started: float) -> EncodeStats:
    """The statistics of one finished encode, counted into the embedding metrics."""
    tokens = int(lengths.sum())
    metrics.CHUNKS_EMBEDDED.inc(n)
    metrics.TOKENS_EMBEDDED.inc(tokens)
    return EncodeStats(n, tokens, padded, batches, time.perf_counter() - started)


def document_inputs(
    spec: ModelSpec, texts: Sequence[str], titles: Sequence[str | None] | None
) -> list[str]:
    tmpl = spec.document_prompt
    if tmpl == "{text}":
        return list(texts)
    titles = titles or [None] * len(texts)
    return [tmpl.format(title=t or "none", text=x) for x, t in zip(texts, titles, strict=True)]


def query_inputs(spec: ModelSpec, texts: Sequence[str]) -> list[str]:
    return [spec.query_prompt + t for t in texts]


def token_budget_batches(
    lengths: np.ndarray, batch_size: int, max_seq: int
) -> Iterator[tuple[np.ndarray, int]]:
    """(row indices, longest length) per batch: longest first (an OOM shows on batch one), short
    rows in big batches and long ones in small, so padding stays low and memory flat."""
    n = len(lengths)
    order = np.argsort(-lengths, kind="stable")
    budget = batch_size * min(max_seq, 128)  # tokens per batch
    i = 0
    while i < n:
        longest = int(lengths[order[i]])
        size = max(1, min(batch_size * 4, budget // max(longest, 1)))
        yield order[i : i + size], longest
        i += size
