"""Conformance factory for the OpenSearch vector index on the real test node.

All tests of a session share one index (as tenants share it in production; every test uses its
own random tenants), which saves an index creation (~1 s) per test. The index, alias and
template are dropped when the session ends (through plain HTTP: the event loops are gone by then;
a node this session started is stopped anyway).
"""

from __future__ import annotations

import contextlib
import urllib.request
import uuid
from pathlib import Path

import pytest

from datatorag.adapters.opensearch import OpenSearchIndex, OpenSearchIndexAdmin
from datatorag.config import OpenSearchSettings
from datatorag.ports import IndexAdmin, VectorIndex

VECTOR_DIM = 8  # the conformance suite builds its own small vectors
MODEL_ID = "conformance-model"
_PREFIX = f"dtr-conf-{uuid.uuid4().hex[:8]}"  # this session's
_registered: set[str] = set()


def _drop_everything(url: str, index: OpenSearchIndex) -> None:
    for path in (f"/{index.pattern_base}*", f"/_index_template/{index.template_name}"):
        request = urllib.request.Request(f"{url}{path}", method="DELETE")
        # OSError: the node is gone (it was this session's) or never got the index
        with contextlib.suppress(OSError):
            urllib.request.urlopen(request, timeout=10).close()


async def make_vector_index(request: pytest.FixtureRequest, tmp_path: Path) -> VectorIndex:
    server = request.getfixturevalue("opensearch_server")
    settings = OpenSearchSettings(url=server.url, engine=server.engine, index_prefix=_PREFIX)
    index = OpenSearchIndex(settings, model_id=MODEL_ID, dim=VECTOR_DIM, replicas=0)
    if server.url not in _registered:
        _registered.add(server.url)
        request.config.add_cleanup(lambda: _drop_everything(server.url, index))
    await index.ensure()
    return index


def _drop_prefix(url: str, prefix: str) -> None:
    for path in (f"/{prefix}-*", f"/_index_template/{prefix}-*"):
        request = urllib.request.Request(f"{url}{path}", method="DELETE")
        with contextlib.suppress(OSError):
            urllib.request.urlopen(request, timeout=10).close()


async def make_index_admin(request: pytest.FixtureRequest, tmp_path: Path) -> IndexAdmin:
    server = request.getfixturevalue("opensearch_server")
    prefix = f"dtr-adm-{uuid.uuid4().hex[:8]}"
    settings = OpenSearchSettings(url=server.url, engine=server.engine, index_prefix=prefix)
    request.addfinalizer(lambda: _drop_prefix(server.url, prefix))
    return OpenSearchIndexAdmin(settings, replicas=0)
