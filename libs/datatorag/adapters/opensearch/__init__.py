"""OpenSearch adapters (production vector index)."""

from datatorag.adapters.opensearch.client import make_client
from datatorag.adapters.opensearch.index import OpenSearchIndex, OpenSearchIndexAdmin

__all__ = ["OpenSearchIndex", "OpenSearchIndexAdmin", "make_client"]
