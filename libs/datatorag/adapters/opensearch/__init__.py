"""OpenSearch adapters (production vector index)."""

from datatorag.adapters.opensearch.client import make_client
from datatorag.adapters.opensearch.index import OpenSearchIndex

__all__ = ["OpenSearchIndex", "make_client"]
