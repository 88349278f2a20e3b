"""Conformance suite of the ``Embedder`` port (``datatorag.ports.embedder``): shape,
normalisation, order, prompts, empty input.

Reuse it for any adapter, in this repository or outside it: write a test module that star-imports
this module and provides a fixture named ``embedder`` yielding the adapter under test (and
closing it afterwards)::

    import pytest

    from datatorag.testing.conformance.embedder import *  # noqa: F403

    @pytest.fixture
    async def embedder():
        adapter = MyEmbedder(...)
        yield adapter
        await adapter.close()

pytest collects the imported test functions as if they were written in that module. ``__all__``
lists every test function of the suite; the document texts stay private. The tests are
``async def`` and need pytest-asyncio (``asyncio_mode = "auto"``, or set
``pytestmark = pytest.mark.asyncio`` in your module). The suite expects the product's model
(384 dimensions, semantic enough to match a paraphrased question).
"""

from __future__ import annotations

import asyncio

import numpy as np

from datatorag.ports import Embedder

__all__ = [
    "test_check_passes_and_model_is_described",
    "test_concurrent_callers_get_their_own_rows",
    "test_documents_are_unit_vectors_in_input_order",
    "test_empty_input_returns_empty_matrix",
    "test_query_finds_the_matching_document",
]

DOCS = [
    "Employees accrue 1.5 days of paid time off per month.",
    "The 401(k) plan matches contributions up to 4% of salary.",
    "Remote work requires a secure home network and a company laptop.",
    "Expense reports are due within 30 days of travel.",
]


async def test_documents_are_unit_vectors_in_input_order(embedder: Embedder) -> None:
    # Mixed lengths force the length sort; rows must still come back in input order.
    texts = [DOCS[0] * 6, DOCS[1], DOCS[2] * 3, DOCS[3]]
    out = await embedder.embed_documents(texts)
    assert out.shape == (4, embedder.dim) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-4)
    singles = np.vstack([await embedder.embed_documents([t]) for t in texts])
    np.testing.assert_allclose(out, singles, atol=2e-4)


async def test_query_finds_the_matching_document(embedder: Embedder) -> None:
    docs = await embedder.embed_documents(DOCS)
    q = await embedder.embed_queries(["how much does the company match my retirement savings?"])
    assert q.shape == (1, embedder.dim)
    assert int(np.argmax(docs @ q[0])) == 1


async def test_empty_input_returns_empty_matrix(embedder: Embedder) -> None:
    out = await embedder.embed_documents([])
    assert out.shape == (0, embedder.dim)


async def test_concurrent_callers_get_their_own_rows(embedder: Embedder) -> None:
    results = await asyncio.gather(*(embedder.embed_queries([d]) for d in DOCS))
    direct = await embedder.embed_queries(DOCS)
    for i, r in enumerate(results):
        np.testing.assert_allclose(r[0], direct[i], atol=2e-4)


async def test_check_passes_and_model_is_described(embedder: Embedder) -> None:
    await embedder.check()
    assert embedder.model_id and embedder.dim == 384
