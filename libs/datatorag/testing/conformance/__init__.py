"""One pytest suite per port, importable so that any adapter (in this repository or outside it)
can prove it honours its port.

``queue``, ``blobstore``, ``registry``, ``vector_index`` and ``embedder`` each hold a suite. To run
one, write a test module that star-imports it and provides the fixture of the same name, yielding
the adapter under test::

    from datatorag.testing.conformance.queue import *  # noqa: F403

    @pytest.fixture
    async def queue(): ...

Each suite's ``__all__`` lists its test functions, the fixtures it defines itself and its
``pytestmark``; its module docstring says what the fixture must provide. This package imports no
suite by itself (each imports pytest).
"""
