"""The answer providers named by ``DATATORAG_ANSWER_PROVIDERS``, in fallback order; each LLM
adapter is imported only when named."""

from __future__ import annotations

from datatorag.answering.builder import ProviderFactory
from datatorag.answering.evidence import EvidenceScorer
from datatorag.answering.extractive import ExtractiveGenerator
from datatorag.config import Settings
from datatorag.ports import Generator


def make_generator(name: str, settings: Settings, scorer: EvidenceScorer) -> Generator:
    a = settings.answer
    if name == "extractive":
        return ExtractiveGenerator(scorer, min_evidence=a.min_evidence)
    if name == "openai":
        from datatorag.adapters.llm.openai_chat import OpenAIChatGenerator

        return OpenAIChatGenerator(
            a.openai_base_url,
            a.openai_model,
            api_key=a.openai_api_key.get_secret_value() if a.openai_api_key else None,
            azure_api_version=a.openai_azure_api_version,
            timeout_s=a.timeout_s,
        )
    if name == "bedrock":
        from datatorag.adapters.aws.bedrock import BedrockGenerator

        return BedrockGenerator(
            a.bedrock_model_id,
            region=a.bedrock_region or settings.aws.region,
            endpoint_url=a.bedrock_endpoint_url,
            timeout_s=a.timeout_s,
        )
    raise ValueError(f"unknown answer provider {name!r}")


def answer_providers(settings: Settings) -> ProviderFactory:
    names = settings.answer.provider_chain()  # a bad DATATORAG_ANSWER_PROVIDERS fails at startup

    def make(scorer: EvidenceScorer) -> list[Generator]:
        return [make_generator(n, settings, scorer) for n in names]

    return make
