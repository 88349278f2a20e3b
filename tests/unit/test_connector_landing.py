"""Landing zone for uploads (size limit while streaming, content-type sniffing, safe names) and
S3 event notifications triggering syncs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from datatorag.adapters.embedded.local_blobstore import LocalBlobStore
from datatorag.adapters.embedded.sqlite_queue import SqliteQueue
from datatorag.adapters.embedded.sqlite_registry import SqliteRegistry
from datatorag.config import Settings
from datatorag.connectors.config import parse_sources
from datatorag.connectors.folder import FolderSource
from datatorag.connectors.landing import (
    DOCX,
    PPTX,
    XLSX,
    FolderLanding,
    safe_filename,
    sniff_content_type,
)
from datatorag.connectors.s3_events import parse_s3_events, pump_s3_events, routes_from_config
from datatorag.connectors.scheduler import Scheduler
from datatorag.connectors.sync import SyncOptions, sync_source
from datatorag.domain.contracts import parse_message
from datatorag.domain.errors import PermanentError

pytestmark = pytest.mark.timeout(60)


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for p in parts:
        yield p


def test_sniffing() -> None:
    assert sniff_content_type(b"%PDF-1.7\n...", "x.pdf") == "application/pdf"
    assert sniff_content_type(b"%PDF-1.7\n...", "renamed.txt") == "application/pdf"
    assert sniff_content_type(b"PK\x03\x04....word/document.xml", "a.docx") == DOCX
    assert sniff_content_type(b"PK\x03\x04....xl/workbook.xml", "a.docx") == XLSX  # bytes win
    assert sniff_content_type(b"PK\x03\x04....ppt/slides/slide1.xml", "deck") == PPTX
    assert sniff_content_type(b"PK\x03\x04....readme.txt", "a.zip") is None  # a plain zip
    assert sniff_content_type(b"\x89PNG\r\n\x1a\n....", "scan") == "image/png"
    assert sniff_content_type(b"\xff\xd8\xff\xe0....", "scan.jpg") == "image/jpeg"
    assert sniff_content_type(b"II*\x00....", "scan.tif") == "image/tiff"
    assert sniff_content_type(b"From: hr@example.com\r\n", "news.eml") == "message/rfc822"
    assert sniff_content_type(b"\x7fELF\x02\x01\x00\x00", "a.pdf") is None  # lies about itself
    assert sniff_content_type(b"<!DOCTYPE html><html>", "page") == "text/html"
    assert sniff_content_type(b"# Title\n\ntext", "notes.md") == "text/markdown"
    assert sniff_content_type(b'{"a": 1}', "data") == "application/json"
    assert sniff_content_type("caf\u00e9 ok".encode()[:4], "t.txt") == "text/plain"  # cut mid-char
    assert sniff_content_type(b"\xff\xfe\xfd junk latin", "t.txt") is None


def test_safe_filename() -> None:
    assert safe_filename("../../etc/passwd") == "passwd"
    assert safe_filename("C:\\Users\\x\\Leave Policy (2025).pdf") == "Leave Policy (2025).pdf"
    assert safe_filename("bad\x00\nname.pdf") == "badname.pdf"
    assert safe_filename("x" * 300 + ".pdf").endswith(".pdf")
    assert len(safe_filename("x" * 300 + ".pdf")) == 120
    with pytest.raises(PermanentError) as info:
        safe_filename("../..")
    assert info.value.code == "bad_filename"


async def test_folder_landing_feeds_a_folder_source(tmp_path: Path) -> None:
    landing = FolderLanding(tmp_path / "landing", max_bytes=1000, prefix="uploads")
    up = await landing.receive("acme", "Leave.pdf", chunks(b"%PDF-1.4 ", b"leave policy"))
    assert up.content_type == "application/pdf" and up.size == 21
    assert up.key.startswith("uploads/acme/") and up.key.endswith("-Leave.pdf")
    assert (tmp_path / "landing" / up.key).read_bytes() == b"%PDF-1.4 leave policy"

    for parts, code in [
        ((b"x" * 600, b"y" * 600), "too_large"),
        ((), "empty_file"),
        ((b"\x00\x01binary",), "unsupported_type"),
    ]:
        with pytest.raises(PermanentError) as info:
            await landing.receive("acme", "f.pdf", chunks(*parts))
        assert info.value.code == code
    # a half-written upload (hidden .part file) is never picked up
    (tmp_path / "landing/uploads/acme/.half.pdf.part").write_bytes(b"%PDF partial")

    registry = SqliteRegistry(tmp_path / "r.db")
    queue = SqliteQueue(tmp_path / "q.db", name="parse")
    src = FolderSource("uploads", "acme", tmp_path / "landing/uploads/acme")
    run = await sync_source(
        src,
        registry=registry,
        blobstore=LocalBlobStore(tmp_path / "blobs"),
        parse_queue=queue,
        settings=Settings(),
        options=SyncOptions(),
    )
    msgs = [parse_message(m.body) for m in await queue.receive(10)]
    assert run.counts["new"] == 1 and [m.content_type for m in msgs] == ["application/pdf"]
    await queue.close()
    await registry.close()


def test_parse_s3_events() -> None:
    direct = {
        "Records": [
            {
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": "b"}, "object": {"key": "in/acme/Leave+Policy.pdf"}},
            }
        ]
    }
    (ev,) = parse_s3_events(json.dumps(direct))
    assert (ev.bucket, ev.key) == ("b", "in/acme/Leave Policy.pdf")
    sns = {"Type": "Notification", "Message": json.dumps(direct)}
    assert parse_s3_events(json.dumps(sns)) == [ev]
    bridge = {
        "source": "aws.s3",
        "detail-type": "Object Deleted",
        "detail": {"bucket": {"name": "b"}, "object": {"key": "k"}},
    }
    assert parse_s3_events(json.dumps(bridge))[0].name == "Object Deleted"
    assert parse_s3_events(json.dumps({"Event": "s3:TestEvent"})) == []
    with pytest.raises(ValueError):
        parse_s3_events(json.dumps({"hello": 1}))


async def test_events_trigger_the_matching_source(tmp_path: Path) -> None:
    cfg = parse_sources("""
tenants:
  acme: {sources: [{id: landing, type: s3, bucket: drop, prefix: in/acme/}]}
  globex: {sources: [{id: landing, type: s3, bucket: drop, prefix: in/globex/}]}
""")
    routes = routes_from_config(cfg)
    events = SqliteQueue(tmp_path / "events.db", name="s3-events", max_receives=3)
    triggered: list[tuple[str, str]] = []

    class Recorder(Scheduler):
        def trigger(self, tenant: str, source_id: str) -> dict:
            triggered.append((tenant, source_id))
            return {}

    sched = Recorder(
        registry=SqliteRegistry(tmp_path / "r.db"),
        blobstore=LocalBlobStore(tmp_path / "b"),
        parse_queue=SqliteQueue(tmp_path / "q.db", name="p"),
        settings=Settings(),
    )
    for key in ("in/acme/a.pdf", "in/acme/b.pdf", "elsewhere/x.pdf"):
        await events.send(
            json.dumps(
                {
                    "Records": [
                        {
                            "eventName": "ObjectCreated:Put",
                            "s3": {"bucket": {"name": "drop"}, "object": {"key": key}},
                        }
                    ]
                }
            )
        )
    await events.send("not json at all")
    stop = asyncio.Event()
    task = asyncio.create_task(pump_s3_events(events, sched, routes, stop=stop, wait_s=0.1))
    for _ in range(50):
        if triggered and await events.depth() == 0:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await task
    assert triggered == [("acme", "landing")]  # two events, one trigger; nothing for globex
    (dead,) = await events.dlq_messages()
    assert dead.body == "not json at all"
