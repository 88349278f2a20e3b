"""Conformance suite of the ``EmbeddingCache`` port (``datatorag.ports.embedding_cache``).

Star-import it into a test module that provides a fixture named ``embedding_cache`` yielding the
adapter under test (see ``datatorag.testing.conformance.registry`` for the pattern). Each test
uses its own random model name, so adapters backed by one shared table work too.
"""

from __future__ import annotations

import asyncio
import uuid

import numpy as np
import pytest

from datatorag.ports import EmbeddingCache

__all__ = [
    "model",
    "pytestmark",
    "test_check_passes",
    "test_concurrent_puts_of_the_same_key_leave_one_vector",
    "test_many_keys_in_one_call",
    "test_missing_keys_are_absent",
    "test_models_are_separate_namespaces",
    "test_put_again_replaces",
    "test_put_then_get_round_trips_exact_float32",
]

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def model() -> str:
    return f"model-{uuid.uuid4().hex[:10]}"


def _vec(seed: int, dim: int = 384) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


async def test_check_passes(embedding_cache: EmbeddingCache) -> None:
    await embedding_cache.check()


async def test_put_then_get_round_trips_exact_float32(
    embedding_cache: EmbeddingCache, model: str
) -> None:
    vectors = {"a" * 64: _vec(1), "b" * 64: _vec(2)}
    await embedding_cache.put_many(model, vectors)
    got = await embedding_cache.get_many(model, ["a" * 64, "b" * 64])
    assert set(got) == set(vectors)
    for k, v in vectors.items():
        assert got[k].dtype == np.float32 and got[k].shape == (384,)
        assert np.array_equal(got[k], v)


async def test_missing_keys_are_absent(embedding_cache: EmbeddingCache, model: str) -> None:
    await embedding_cache.put_many(model, {"known": _vec(3)})
    got = await embedding_cache.get_many(model, ["known", "unknown"])
    assert list(got) == ["known"]
    assert await embedding_cache.get_many(model, []) == {}
    await embedding_cache.put_many(model, {})  # nothing to store is no error


async def test_models_are_separate_namespaces(embedding_cache: EmbeddingCache, model: str) -> None:
    await embedding_cache.put_many(model, {"k": _vec(4)})
    other = f"{model}-other"
    assert await embedding_cache.get_many(other, ["k"]) == {}
    await embedding_cache.put_many(other, {"k": _vec(5, dim=768)})
    assert (await embedding_cache.get_many(model, ["k"]))["k"].shape == (384,)
    assert (await embedding_cache.get_many(other, ["k"]))["k"].shape == (768,)


async def test_put_again_replaces(embedding_cache: EmbeddingCache, model: str) -> None:
    await embedding_cache.put_many(model, {"k": _vec(6)})
    await embedding_cache.put_many(model, {"k": _vec(7)})
    assert np.array_equal((await embedding_cache.get_many(model, ["k"]))["k"], _vec(7))


async def test_many_keys_in_one_call(embedding_cache: EmbeddingCache, model: str) -> None:
    # more than a DynamoDB batch (100 reads / 25 writes) and a SQLite IN (...) list of 500
    vectors = {f"key-{i:04d}": _vec(i, dim=16) for i in range(620)}
    await embedding_cache.put_many(model, vectors)
    keys = [*vectors, "absent", "key-0001"]  # a duplicate is answered once
    got = await embedding_cache.get_many(model, keys)
    assert set(got) == set(vectors)
    assert all(np.array_equal(got[k], v) for k, v in vectors.items())


async def test_concurrent_puts_of_the_same_key_leave_one_vector(
    embedding_cache: EmbeddingCache, model: str
) -> None:
    v = _vec(8)
    await asyncio.gather(*(embedding_cache.put_many(model, {"same": v}) for _ in range(5)))
    assert np.array_equal((await embedding_cache.get_many(model, ["same"]))["same"], v)
