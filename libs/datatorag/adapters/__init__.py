"""Adapters: implementations of ``datatorag.ports`` (``embedded`` for one machine; ``aws`` and
``opensearch`` for production)."""
