"""Generator adapters under test: the extractive answerer (on the real MiniLM model), the
OpenAI-compatible adapter against the local fake server, Bedrock against the local fake
endpoint. Each ``unreachable`` variant points the same adapter at nothing."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pytest

from datatorag.adapters.aws.bedrock import BedrockGenerator
from datatorag.adapters.llm.openai_chat import OpenAIChatGenerator
from datatorag.answering import EvidenceScorer, ExtractiveGenerator
from datatorag.domain.errors import DependencyError
from datatorag.ports import Embedder, Generator
from tests.conformance.factories_embedder import _free_port, shared_local_embedder
from tests.fakes.bedrock_server import MODEL, FakeBedrock
from tests.fakes.openai_server import FakeOpenAI


class _DownEmbedder(Embedder):
    model_id, dim = "down", 384

    async def embed_documents(
        self, texts: Sequence[str], titles: Sequence[str | None] | None = None
    ) -> np.ndarray:
        raise DependencyError("embedder", "connection refused")

    async def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        raise DependencyError("embedder", "connection refused")

    async def check(self) -> None:
        raise DependencyError("embedder", "connection refused")


def _aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # the standard chain finds these, as it would find an instance role
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        if not os.environ.get(name):
            monkeypatch.setenv(name, value)


async def make_extractive(request: pytest.FixtureRequest, tmp_path) -> tuple[Generator, object]:
    return ExtractiveGenerator(EvidenceScorer(shared_local_embedder())), None


async def make_openai(request: pytest.FixtureRequest, tmp_path) -> tuple[Generator, object]:
    server = FakeOpenAI()
    await server.start()
    return OpenAIChatGenerator(server.base_url_v1, server.model, api_key=server.api_key), server


async def make_bedrock(request: pytest.FixtureRequest, tmp_path) -> tuple[Generator, object]:
    _aws_env(request.getfixturevalue("monkeypatch"))
    server = FakeBedrock()
    await server.start()
    return BedrockGenerator(MODEL, endpoint_url=server.base_url, region="eu-west-1"), server


async def make_unreachable_extractive(request, tmp_path) -> tuple[Generator, object]:
    return ExtractiveGenerator(EvidenceScorer(_DownEmbedder())), None


async def make_unreachable_openai(request, tmp_path) -> tuple[Generator, object]:
    url = f"http://127.0.0.1:{_free_port()}/v1"
    return OpenAIChatGenerator(url, "test-model", api_key="sk-test"), None


async def make_unreachable_bedrock(request, tmp_path) -> tuple[Generator, object]:
    _aws_env(request.getfixturevalue("monkeypatch"))
    url = f"http://127.0.0.1:{_free_port()}"
    return BedrockGenerator(MODEL, endpoint_url=url, region="eu-west-1", timeout_s=5), None
