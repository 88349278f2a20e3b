"""Shared fixtures. Real servers are session fixtures from ``tests/servers``."""

from __future__ import annotations

pytest_plugins = [
    "tests.servers.moto",
    "tests.servers.opensearch",
    "tests.servers.ftp",
]
