"""Adapters: implementations of ``libs.ports`` (``embedded`` for one machine, production for AWS)."""
