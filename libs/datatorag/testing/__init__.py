"""Reusable test support for code that plugs into datatorag.

* ``datatorag.testing.conformance``: one pytest suite per port. An adapter written outside this
  repository proves it honours the port by importing the suite into a test module and providing
  the fixture it names (``queue``, ``blobstore``, ``registry``, ``vector_index``, ``embedder``).
* ``datatorag.testing.memory``: in-memory adapters of every port (themselves conformant), for
  fast service-layer tests.

Importing this package needs the ``dev`` extra (pytest, pytest-asyncio).
"""
