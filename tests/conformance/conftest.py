"""Every conformance test runs once per adapter of its port.

The suites themselves live in ``datatorag.testing.conformance`` (importable by adapters written
outside this repository); ``test_*.py`` here star-import them. Each adapter kind maps to an async
factory ``make(request, tmp_path)`` in a ``tests/conformance/factories_*.py`` module; production
kinds pull their server fixture through ``request.getfixturevalue`` so a missing server fails
loudly (see ``tests/servers/_require.py``). ``EXCLUDED`` names the few tests an adapter kind
cannot pass by its nature, each with the reason; those items are not generated at all (deselected,
with the reason in the run's header), so no skip ever stands in for a pass.
"""

from __future__ import annotations

import importlib

import pytest

ADAPTERS: dict[str, dict[str, str]] = {
    # port -> adapter kind -> "module:function"
    "queue": {
        "sqlite": "tests.conformance.factories_embedded:make_queue",
        "sqs": "tests.conformance.factories_aws:make_queue",
        "memory": "tests.conformance.factories_memory:make_queue",
    },
    "blobstore": {
        "local": "tests.conformance.factories_embedded:make_blobstore",
        "s3": "tests.conformance.factories_aws:make_blobstore",
        "memory": "tests.conformance.factories_memory:make_blobstore",
    },
    "registry": {
        "sqlite": "tests.conformance.factories_embedded:make_registry",
        "dynamodb": "tests.conformance.factories_aws:make_registry",
        "memory": "tests.conformance.factories_memory:make_registry",
    },
    "vector_index": {
        "lancedb": "tests.conformance.factories_embedded:make_vector_index",
        "opensearch": "tests.conformance.factories_opensearch:make_vector_index",
        "memory": "tests.conformance.factories_memory:make_vector_index",
    },
    "index_admin": {
        "lancedb": "tests.conformance.factories_embedded:make_index_admin",
        "opensearch": "tests.conformance.factories_opensearch:make_index_admin",
        "memory": "tests.conformance.factories_memory:make_index_admin",
    },
    "embedding_cache": {
        "sqlite": "tests.conformance.factories_embedded:make_embedding_cache",
        "dynamodb": "tests.conformance.factories_aws:make_embedding_cache",
        "memory": "tests.conformance.factories_memory:make_embedding_cache",
    },
    "embedder": {
        "local": "tests.conformance.factories_embedder:make_local_embedder",
        "onnx": "tests.conformance.factories_embedder:make_onnx_embedder",
        "http": "tests.conformance.factories_embedder:make_http_embedder",
        "memory": "tests.conformance.factories_memory:make_embedder",
    },
    "generator": {
        "extractive": "tests.conformance.factories_generator:make_extractive",
        "openai": "tests.conformance.factories_generator:make_openai",
        "bedrock": "tests.conformance.factories_generator:make_bedrock",
    },
    "unreachable_generator": {
        "extractive": "tests.conformance.factories_generator:make_unreachable_extractive",
        "openai": "tests.conformance.factories_generator:make_unreachable_openai",
        "bedrock": "tests.conformance.factories_generator:make_unreachable_bedrock",
    },
}

EXCLUDED: dict[tuple[str, str], dict[str, str]] = {
    # (port, adapter kind) -> test function -> why that adapter cannot pass it
    ("embedder", "memory"): {
        "test_query_finds_the_matching_document": (
            "the hashing embedder is lexical, not semantic: the paraphrased question shares only "
            "'the' with the expected document and 'company' with another, so which ranks first "
            "is down to hash collisions, not to anything the adapter promises"
        ),
    },
}


def _excluded(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return None
    for port in ADAPTERS:
        kind = callspec.params.get(port)
        reason = EXCLUDED.get((port, kind), {}).get(getattr(item, "originalname", item.name))
        if reason is not None:
            return f"{kind} {port}: {reason}"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep, dropped = [], []
    for item in items:
        (dropped if _excluded(item) else keep).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [
        f"conformance: {kind} {port} does not run {test}: {why}"
        for (port, kind), tests in EXCLUDED.items()
        for test, why in tests.items()
    ]


def _factory(spec: str):
    module, _, fn = spec.partition(":")
    return getattr(importlib.import_module(module), fn)


async def _build(port: str, request: pytest.FixtureRequest, tmp_path):
    adapter = await _factory(ADAPTERS[port][request.param])(request, tmp_path)
    return adapter


@pytest.fixture(params=list(ADAPTERS["queue"]))
async def queue(request, tmp_path):
    adapter = await _build("queue", request, tmp_path)
    yield adapter
    await adapter.close()


@pytest.fixture(params=list(ADAPTERS["blobstore"]))
async def blobstore(request, tmp_path):
    adapter = await _build("blobstore", request, tmp_path)
    yield adapter
    await adapter.close()


@pytest.fixture(params=list(ADAPTERS["registry"]))
async def registry(request, tmp_path):
    adapter = await _build("registry", request, tmp_path)
    yield adapter
    await adapter.close()


@pytest.fixture(params=list(ADAPTERS["vector_index"]))
async def vector_index(request, tmp_path):
    adapter = await _build("vector_index", request, tmp_path)
    yield adapter
    await adapter.close()


@pytest.fixture(params=list(ADAPTERS["embedder"]))
async def embedder(request, tmp_path):
    adapter = await _build("embedder", request, tmp_path)
    yield adapter
    await adapter.close()


@pytest.fixture(params=list(ADAPTERS["embedding_cache"]))
async def embedding_cache(request, tmp_path):
    adapter = await _build("embedding_cache", request, tmp_path)
    yield adapter
    await adapter.close()


@pytest.fixture(params=list(ADAPTERS["index_admin"]))
async def index_admin(request, tmp_path):
    adapter = await _build("index_admin", request, tmp_path)
    yield adapter
    await adapter.close()


async def _generator(port: str, request, tmp_path):
    # generator factories return (adapter, fake server or None): both are closed afterwards
    adapter, server = await _factory(ADAPTERS[port][request.param])(request, tmp_path)
    try:
        yield adapter
    finally:
        await adapter.close()
        if server is not None:
            await server.stop()


@pytest.fixture(params=list(ADAPTERS["generator"]))
async def generator(request, tmp_path):
    async for adapter in _generator("generator", request, tmp_path):
        yield adapter


@pytest.fixture(params=list(ADAPTERS["unreachable_generator"]))
async def unreachable_generator(request, tmp_path):
    async for adapter in _generator("unreachable_generator", request, tmp_path):
        yield adapter
