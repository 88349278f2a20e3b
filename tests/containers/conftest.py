"""The images, built once per session (cached by podman's layer cache and the host's uv cache)."""

from __future__ import annotations

import pytest

from tests.containers._podman import ensure_images


@pytest.fixture(scope="session")
def images() -> dict[str, str]:
    return ensure_images()
