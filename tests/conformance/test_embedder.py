"""The Embedder conformance suite (``datatorag.testing.conformance.embedder``), run against every
adapter of ``ADAPTERS["embedder"]`` in ``conftest.py`` (the ``embedder`` fixture)."""

from datatorag.testing.conformance.embedder import *  # noqa: F403
