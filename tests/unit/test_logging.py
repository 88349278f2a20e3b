"""JSON log lines carry the bound document context and survive awkward values."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
import structlog

from datatorag.observability.log import bound, configure, get_logger


@pytest.fixture(autouse=True)
def _restore_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.reset_defaults()
    root.handlers[:], root.level = handlers, level


def test_json_lines_carry_tenant_doc_and_correlation_id(capfd: pytest.CaptureFixture[str]) -> None:
    configure("INFO", "json")
    log = get_logger("test")
    with bound(tenant="acme", doc_id="d1", correlation_id="c-42"):
        log.info(
            "parsed",
            pages=3,
            at=datetime(2026, 1, 2, tzinfo=UTC),
            path=Path("a/b.pdf"),
            counts={1: "one"},
        )
    log.debug("hidden")  # below INFO
    log.warning("after", tenant=None)
    lines = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line]
    assert [line["event"] for line in lines] == ["parsed", "after"]
    first = lines[0]
    assert (first["tenant"], first["doc_id"], first["correlation_id"]) == ("acme", "d1", "c-42")
    assert first["level"] == "info" and first["pages"] == 3
    assert first["at"].startswith("2026-01-02T00:00:00") and first["path"] == "a/b.pdf"
    assert first["counts"] == {"1": "one"}
    assert "correlation_id" not in lines[1]  # the context ends with the block
