"""CachedEmbedder: an unchanged chunk is never embedded twice by one model (real SQLite cache)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from datatorag.adapters.embedded.sqlite_embedding_cache import SqliteEmbeddingCache
from datatorag.embedding.cached import CachedEmbedder
from datatorag.ports import EmbeddingCache
from datatorag.testing.memory import HashingEmbedder, MemoryEmbeddingCache


class CountingEmbedder(HashingEmbedder):
    def __init__(self, dim: int = 32, model_id: str = "count") -> None:
        super().__init__(dim, model_id)
        self.embedded: list[str] = []

    async def embed_documents(
        self, texts: Sequence[str], titles: Sequence[str | None] | None = None
    ) -> np.ndarray:
        self.embedded.extend(texts)
        return await super().embed_documents(texts, titles)


class BrokenCache(EmbeddingCache):
    async def get_many(self, model: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
        raise OSError("disk gone")

    async def put_many(self, model: str, vectors: object) -> None:
        raise OSError("disk gone")

    async def check(self) -> None:
        raise OSError("disk gone")


@pytest.fixture
async def cache(tmp_path: Path):
    c = SqliteEmbeddingCache(tmp_path / "cache.sqlite3")
    yield c
    await c.close()


async def test_second_pass_embeds_nothing_and_returns_the_same_vectors(cache) -> None:
    inner = CountingEmbedder()
    emb = CachedEmbedder(inner, cache)
    texts, titles = ["alpha beta", "gamma", "delta"], ["T", None, "T"]
    first = await emb.embed_documents(texts, titles)
    assert inner.embedded == texts and (emb.hits, emb.misses) == (0, 3)
    again = await emb.embed_documents(texts, titles)
    assert inner.embedded == texts  # nothing new embedded
    assert (emb.hits, emb.misses) == (3, 3)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_allclose(first, await inner.embed_documents(texts, titles), atol=1e-7)


async def test_only_new_or_changed_texts_are_embedded_and_order_is_kept(cache) -> None:
    inner = CountingEmbedder()
    emb = CachedEmbedder(inner, cache)
    await emb.embed_documents(["one", "two"], ["t", "t"])
    inner.embedded.clear()
    out = await emb.embed_documents(["two", "three", "one", "three"], ["t", "t", "t", "t"])
    assert inner.embedded == ["three"]  # a repeat inside one batch is embedded once
    expected = await HashingEmbedder(32, "count").embed_documents(
        ["two", "three", "one", "three"], ["t"] * 4
    )
    np.testing.assert_allclose(out, expected, atol=1e-7)


async def test_title_and_model_are_part_of_the_key(cache) -> None:
    inner = CountingEmbedder()
    emb = CachedEmbedder(inner, cache)
    await emb.embed_documents(["text"], ["Title A"])
    await emb.embed_documents(["text"], ["Title B"])
    assert inner.embedded == ["text", "text"]
    other = CountingEmbedder(model_id="another-model")
    await CachedEmbedder(other, cache).embed_documents(["text"], ["Title A"])
    assert other.embedded == ["text"]  # another model never reuses this one's vectors


async def test_a_failing_cache_falls_back_to_embedding() -> None:
    inner = CountingEmbedder()
    emb = CachedEmbedder(inner, BrokenCache())
    out = await emb.embed_documents(["a", "b"])
    assert out.shape == (2, 32) and inner.embedded == ["a", "b"]


async def test_queries_bypass_the_cache() -> None:
    cache = MemoryEmbeddingCache()
    emb = CachedEmbedder(CountingEmbedder(), cache)
    assert (await emb.embed_queries(["q"])).shape == (1, 32)
    assert cache.gets == 0 and cache.puts == 0
