"""Shared fixtures. Real servers are session fixtures from ``tests/servers``."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Processes the tests start (services, CLI, workers) import this clone's package however pytest
# itself was started: libs/ is the source root, the repository root holds tests/ and bench/.
_paths = [str(REPO / "libs"), str(REPO)]
os.environ["PYTHONPATH"] = os.pathsep.join(
    _paths
    + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p not in _paths]
)

pytest_plugins = [
    "tests.servers.moto",
    "tests.servers.opensearch",
    "tests.servers.ftp",
    "tests.servers.redis",
]
