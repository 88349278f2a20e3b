"""OpenSearch adapters (production vector index)."""

from libs.adapters.opensearch.client import make_client
from libs.adapters.opensearch.index import OpenSearchIndex

__all__ = ["OpenSearchIndex", "make_client"]
