"""The connector adds each tenant's ``uploads`` S3 source (where the production gateway lands
uploads) unless the sources file declares one; and the embedder's consumers can wait for it."""

from __future__ import annotations

import asyncio
import time

import pytest

from datatorag.bootstrap.connector import with_upload_sources
from datatorag.config import Settings
from datatorag.connectors.config import S3SourceConfig, parse_sources
from datatorag.domain.errors import DependencyError
from datatorag.embedding.http import HttpEmbedder

SOURCES = """
tenants:
  acme:
    sources:
      - {id: hr, type: folder, path: /data/hr, interval_s: 60}
  globex:
    sources:
      - {id: uploads, type: s3, bucket: globex-own, prefix: in/}
  initech:
    sources: []
"""


def test_every_tenant_gets_its_uploads_prefix() -> None:
    settings = Settings(uploads_bucket="landing-bucket", uploads_prefix="uploads/")
    config = with_upload_sources(parse_sources(SOURCES), settings)
    for tenant in ("acme", "initech"):
        src = config.find(tenant, "uploads")
        assert isinstance(src, S3SourceConfig), tenant
        assert (src.bucket, src.prefix) == ("landing-bucket", f"uploads/{tenant}/")
    # declared sources are kept as they are, the tenant's own uploads source included
    assert config.find("acme", "hr") == parse_sources(SOURCES).find("acme", "hr")
    own = config.find("globex", "uploads")
    assert isinstance(own, S3SourceConfig) and own.bucket == "globex-own"


def test_without_a_landing_bucket_nothing_is_added() -> None:
    config = parse_sources(SOURCES)
    assert with_upload_sources(config, Settings(uploads_bucket=None)) is config


def test_a_bad_uploads_prefix_is_refused() -> None:
    with pytest.raises(ValueError, match="uploads_prefix"):
        Settings(uploads_prefix="no-trailing-slash")


def test_http_embedder_waits_then_names_the_service() -> None:
    async def go() -> float:
        emb = HttpEmbedder("http://127.0.0.1:9")  # discard port: nothing listens
        started = time.monotonic()
        try:
            with pytest.raises(DependencyError, match=r"127\.0\.0\.1:9 unreachable"):
                await emb.connect(wait_s=1.5)
        finally:
            await emb.close()
        return time.monotonic() - started

    waited = asyncio.run(go())
    assert 1.5 <= waited < 30  # it kept trying for the whole wait, then gave up
