"""Conformance suite of the ``IndexAdmin`` port (``datatorag.ports.vector_index``): blue/green
builds behind a model's logical index.

Star-import it into a test module that provides a fixture named ``index_admin`` yielding the
adapter under test. Each test uses its own random model id, so adapters on one shared cluster or
directory work too.
"""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from datatorag.domain.models import ChunkRecord
from datatorag.ports import IndexAdmin, VectorIndex

__all__ = [
    "model_id",
    "pytestmark",
    "test_a_build_serves_nothing_until_promoted",
    "test_create_makes_a_new_empty_index_each_time",
    "test_drop_removes_a_retired_index_but_never_the_serving_one",
    "test_promote_switches_readers_and_returns_what_it_replaced",
    "test_two_dimensions_of_one_model_are_separate",
]

pytestmark = pytest.mark.timeout(120)
DIM = 8


@pytest.fixture
def model_id() -> str:
    return f"conf-admin-{uuid.uuid4().hex[:8]}"


def _records(tenant: str, doc_id: str, n: int, dim: int = DIM) -> list[ChunkRecord]:
    out = []
    for i in range(n):
        v = np.zeros(dim)
        v[i % dim] = 1.0
        out.append(
            ChunkRecord(
                id=ChunkRecord.make_id(doc_id, "v1", i),
                tenant=tenant,
                doc_id=doc_id,
                version="v1",
                chunk_index=i,
                text=f"chunk {i} of {doc_id}",
                source="s",
                path=f"{doc_id}.txt",
                vector=v.tolist(),
            )
        )
    return out


async def _fill(admin: IndexAdmin, name: str, doc_id: str, n: int, dim: int = DIM) -> None:
    index = admin.open(name, dim)
    try:
        assert await index.upsert(_records("t", doc_id, n, dim)) == n
    finally:
        await index.close()


async def _serving_doc_ids(admin: IndexAdmin, model_id: str, dim: int = DIM) -> set[str]:
    index: VectorIndex = admin.open_serving(model_id, dim)
    try:
        hits = await index.bm25("t", "chunk", 50)
    finally:
        await index.close()
    return {h.chunk.doc_id for h in hits}


async def test_create_makes_a_new_empty_index_each_time(
    index_admin: IndexAdmin, model_id: str
) -> None:
    a = await index_admin.create(model_id, DIM)
    b = await index_admin.create(model_id, DIM)
    assert a != b
    assert set(await index_admin.list(model_id, DIM)) == {a, b}
    index = index_admin.open(b, DIM)
    try:
        assert await index.count() == 0
    finally:
        await index.close()


async def test_a_build_serves_nothing_until_promoted(
    index_admin: IndexAdmin, model_id: str
) -> None:
    assert await index_admin.serving(model_id, DIM) is None
    build = await index_admin.create(model_id, DIM)
    await _fill(index_admin, build, "doc-a", 3)
    assert await index_admin.serving(model_id, DIM) is None
    assert await index_admin.promote(model_id, DIM, build) == []
    assert await index_admin.serving(model_id, DIM) == build
    assert await _serving_doc_ids(index_admin, model_id) == {"doc-a"}


async def test_promote_switches_readers_and_returns_what_it_replaced(
    index_admin: IndexAdmin, model_id: str
) -> None:
    blue = await index_admin.create(model_id, DIM)
    await _fill(index_admin, blue, "blue-doc", 2)
    await index_admin.promote(model_id, DIM, blue)
    green = await index_admin.create(model_id, DIM)
    await _fill(index_admin, green, "green-doc", 2)
    # filling green changed nothing for readers of the logical name
    assert await _serving_doc_ids(index_admin, model_id) == {"blue-doc"}
    assert await index_admin.promote(model_id, DIM, green) == [blue]
    assert await index_admin.serving(model_id, DIM) == green
    assert await _serving_doc_ids(index_admin, model_id) == {"green-doc"}
    with pytest.raises(ValueError):
        await index_admin.promote(model_id, DIM, f"{green}-missing")


async def test_drop_removes_a_retired_index_but_never_the_serving_one(
    index_admin: IndexAdmin, model_id: str
) -> None:
    old = await index_admin.create(model_id, DIM)
    await index_admin.promote(model_id, DIM, old)
    new = await index_admin.create(model_id, DIM)
    await index_admin.promote(model_id, DIM, new)
    with pytest.raises(ValueError):
        await index_admin.drop(new)
    await index_admin.drop(old)
    await index_admin.drop(old)  # already gone: a no-op
    assert await index_admin.list(model_id, DIM) == [new]
    # forced (a model's grace period is over): gone, and nothing serves the model any more
    await index_admin.drop(new, force=True)
    assert await index_admin.list(model_id, DIM) == []
    assert await index_admin.serving(model_id, DIM) is None


async def test_two_dimensions_of_one_model_are_separate(
    index_admin: IndexAdmin, model_id: str
) -> None:
    small = await index_admin.create(model_id, DIM)
    big = await index_admin.create(model_id, 2 * DIM)
    assert await index_admin.list(model_id, DIM) == [small]
    assert await index_admin.list(model_id, 2 * DIM) == [big]
    await _fill(index_admin, big, "big-doc", 1, dim=2 * DIM)
    await index_admin.promote(model_id, 2 * DIM, big)
    assert await index_admin.serving(model_id, DIM) is None
