"""Embedder port: document and query embeddings, L2-normalised float32."""

from __future__ import annotations

import abc
from collections.abc import Sequence

import numpy as np


class Embedder(abc.ABC):
    """Contract (``datatorag.testing.conformance.embedder``):

    * ``embed_documents`` / ``embed_queries`` return an ``(n, dim)`` float32 array of unit vectors,
      row i for input i (whatever order the adapter batches in), using the model's own document
      and query prompts (EmbeddingGemma: ``title: {title} | text: {text}`` and
      ``task: search result | query: {q}``).
    * An empty input returns a ``(0, dim)`` array.
    """

    model_id: str
    dim: int

    @abc.abstractmethod
    async def embed_documents(
        self, texts: Sequence[str], titles: Sequence[str | None] | None = None
    ) -> np.ndarray: ...

    @abc.abstractmethod
    async def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    @abc.abstractmethod
    async def check(self) -> None: ...

    async def close(self) -> None:
        pass
