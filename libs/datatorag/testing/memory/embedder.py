"""``Embedder`` without a model: deterministic feature-hashing vectors.

Each word (lower-case run of letters and digits) is hashed (BLAKE2b, so the same on every machine
and run) to one of ``dim`` buckets with a sign; a word counts ``1 + log(tf)``, a document's title
counts like its text, and the vector is L2-normalised (float32). A text with no word at all gets
a fixed unit vector of its own.

So texts sharing words are close and texts sharing none are (nearly) orthogonal: enough for
pipeline and retrieval tests that need real vectors of the right shape, without a download or
torch. There are no prompts and no semantics: a paraphrase that shares no word with a document
does not find it.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

from datatorag.ports.embedder import Embedder

_WORD = re.compile(r"\w+")
_EMPTY = "\x00no-words"  # the feature of a text without words


class HashingEmbedder(Embedder):
    def __init__(self, dim: int = 384, model_id: str | None = None) -> None:
        if dim < 2:
            raise ValueError(f"dim must be >= 2, got {dim}")
        self.dim = dim
        self.model_id = model_id or f"hashing-{dim}"
        self.calls = 0  # how many embed calls were made (batching assertions)

    def _bucket(self, word: str) -> tuple[int, float]:
        digest = hashlib.blake2b(word.encode("utf-8", "surrogatepass"), digest_size=8).digest()
        value = int.from_bytes(digest, "little")
        return (value >> 1) % self.dim, (1.0 if value & 1 else -1.0)

    def vector(self, text: str) -> np.ndarray:
        """The unit vector of one text (synchronous, for building expectations in tests)."""
        counts = Counter(_WORD.findall(text.lower())) or Counter([_EMPTY])
        v = np.zeros(self.dim, dtype=np.float64)
        for word, tf in counts.items():
            bucket, sign = self._bucket(word)
            v[bucket] += sign * (1.0 + math.log(tf))
        norm = float(np.linalg.norm(v))
        if norm == 0.0:  # every word cancelled out in the buckets: fall back to the first
            bucket, sign = self._bucket(next(iter(counts)))
            v[bucket], norm = sign, 1.0
        return (v / norm).astype(np.float32)

    def _matrix(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.vstack([self.vector(t) for t in texts])

    async def embed_documents(
        self, texts: Sequence[str], titles: Sequence[str | None] | None = None
    ) -> np.ndarray:
        if titles is not None and len(titles) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(titles)} titles")
        self.calls += 1
        await asyncio.sleep(0)
        if titles is None:
            return self._matrix(texts)
        return self._matrix(
            [
                f"{title} {text}" if title else text
                for text, title in zip(texts, titles, strict=True)
            ]
        )

    async def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        await asyncio.sleep(0)
        return self._matrix(texts)

    async def check(self) -> None:
        await asyncio.sleep(0)
