"""Adapters: implementations of ``datatorag.ports`` (``embedded`` for one machine, production for AWS)."""
