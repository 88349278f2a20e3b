"""Embedded adapters: everything on local disk, no server (the default ``DATATORAG_MODE``).

Modules are imported lazily by callers (``lancedb`` is heavy), so nothing is re-exported here.
"""
