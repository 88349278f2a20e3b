"""The Generator conformance suite (``datatorag.testing.conformance.generator``), run against
every adapter of ``ADAPTERS["generator"]`` in ``conftest.py``: the extractive answerer, the
OpenAI-compatible adapter (local fake server) and Bedrock (local fake endpoint)."""

from datatorag.testing.conformance.generator import *  # noqa: F403
