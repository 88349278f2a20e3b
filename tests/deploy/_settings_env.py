"""Which environment variables ``datatorag.config.Settings`` understands, and building Settings
from a given environment: deployment files must only set variables the code reads."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from pydantic_settings import BaseSettings

from datatorag.config import Settings


def known_env_names() -> set[str]:
    """``DATATORAG_*`` names: top-level fields, and each nested group under its own prefix."""
    top_prefix = Settings.model_config.get("env_prefix", "")
    names: set[str] = set()
    for name, field in Settings.model_fields.items():
        group = field.annotation
        if isinstance(group, type) and issubclass(group, BaseSettings):
            prefix = group.model_config.get("env_prefix", "")
            names |= {f"{prefix}{sub}".upper() for sub in group.model_fields}
        else:
            names.add(f"{top_prefix}{name}".upper())
    return names


def unknown_datatorag_vars(env: Mapping[str, object]) -> list[str]:
    known = known_env_names()
    return sorted(k for k in env if k.startswith("DATATORAG_") and k not in known)


@contextmanager
def _environ(env: Mapping[str, str]) -> Iterator[None]:
    saved = {k: v for k, v in os.environ.items() if k.startswith("DATATORAG_")}
    for k in saved:
        del os.environ[k]
    os.environ.update(env)
    try:
        yield
    finally:
        for k in env:
            os.environ.pop(k, None)
        os.environ.update(saved)


def settings_from(env: Mapping[str, str]) -> Settings:
    """Settings as a service started with exactly these DATATORAG_* variables would see them."""
    with _environ({k: v for k, v in env.items() if k.startswith("DATATORAG_")}):
        return Settings()
