"""Embedding cache port: vectors already computed, keyed by (model, hash of the model's input).

An unchanged chunk is never embedded twice by the same model: not on a re-sync, not after a
re-chunking that reproduces it, not on a reindex.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence

import numpy as np


class EmbeddingCache(abc.ABC):
    """Contract (``datatorag.testing.conformance.embedding_cache``):

    * ``get_many(model, keys)`` returns ``{key: vector}`` for the keys stored under ``model``;
      keys never stored are absent (no error). Vectors come back as 1-d float32 arrays equal to
      what was put.
    * ``put_many(model, vectors)`` stores them; putting a key again replaces its vector.
    * Models are separate namespaces: a key stored under one model is absent under another.
    * Any number of keys per call (adapters split into backend-sized requests).
    """

    @abc.abstractmethod
    async def get_many(self, model: str, keys: Sequence[str]) -> dict[str, np.ndarray]: ...

    @abc.abstractmethod
    async def put_many(self, model: str, vectors: Mapping[str, np.ndarray]) -> None: ...

    @abc.abstractmethod
    async def check(self) -> None: ...

    async def close(self) -> None:
        pass
