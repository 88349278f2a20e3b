"""Reranker port: scores (query, passage) pairs jointly, e.g. a cross-encoder."""

from __future__ import annotations

import abc
from collections.abc import Sequence


class Reranker(abc.ABC):
    """Contract: ``scores(query, passages)`` returns one float per passage, in input order,
    higher = more relevant; an empty list of passages returns an empty list."""

    model_id: str

    @abc.abstractmethod
    async def scores(self, query: str, passages: Sequence[str]) -> list[float]: ...

    async def close(self) -> None:
        pass
