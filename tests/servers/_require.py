"""How tests get real servers: start local binaries, else testcontainers, else fail loudly in CI."""

from __future__ import annotations

import os
import shutil

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def docker_available() -> bool:
    return shutil.which("docker") is not None and os.path.exists("/var/run/docker.sock")


def unavailable(what: str, why: str) -> None:
    """A missing server is never silent: an error in CI, a loud skip on a laptop."""
    message = f"REAL SERVER MISSING: {what}: {why}"
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)
