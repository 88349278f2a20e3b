"""Landing zone for uploads (size limit while streaming, content-type sniffing, safe names) and
S3 event notifications triggering syncs."""

from __future__ import annotations

import asyncio
import errno
import io
import json
import os
import subprocess
import zipfile
from collections.abc import AsyncIterator, Iterator
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
    UnsupportedUpload,
    accepted_type,
    safe_filename,
    sniff_content_type,
)
from datatorag.connectors.s3_events import parse_s3_events, pump_s3_events, routes_from_config
from datatorag.connectors.scheduler import Scheduler
from datatorag.connectors.sync import SyncOptions, sync_source
from datatorag.domain.contracts import parse_message
from datatorag.domain.errors import InsufficientStorage, PermanentError
from datatorag.ports import RunTrigger
from datatorag.runtime import free_disk_check

pytestmark = pytest.mark.timeout(60)


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for p in parts:
        yield p


def _zip(*names: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name in names:
            z.writestr(name, "<x/>")
    return buf.getvalue()


def _sniff(data: bytes) -> str:
    return sniff_content_type(data[:4096], io.BytesIO(data))


def test_sniffing_names_what_the_bytes_are() -> None:
    assert _sniff(b"%PDF-1.7\n...") == "application/pdf"
    assert _sniff(_zip("[Content_Types].xml", "word/document.xml")) == DOCX
    assert _sniff(_zip("[Content_Types].xml", "xl/workbook.xml")) == XLSX
    assert _sniff(_zip("notes.txt")) == "application/zip"
    assert _sniff(b"PK\x03\x04 truncated") == "application/zip"
    assert _sniff(b"\x7fELF\x02\x01\x00\x00") == "application/x-executable"
    assert _sniff(b"\x89PNG\r\n\x1a\n") == "image/png"
    assert _sniff(b"<!DOCTYPE html><html>") == "text/html"
    assert _sniff(b"# Title\n\ntext") == "text/plain"
    assert _sniff(b'{"a": 1}') == "application/json"
    assert _sniff("caf\u00e9 ok".encode()[:4]) == "text/plain"  # cut mid-character
    assert _sniff(b"\xff\xfe\xfd junk latin") == "application/octet-stream"
    assert _sniff(b"\x00\x01binary") == "application/octet-stream"


@pytest.mark.parametrize(
    ("name", "data", "detected"),
    [
        ("report.pdf", _zip("notes.txt"), "application/zip"),
        ("report.pdf", b"<!DOCTYPE html><html><body>hi</body></html>", "text/html"),
        ("report.pdf", b"just some text", "text/plain"),
        ("handbook.docx", b"%PDF-1.7\n...", "application/pdf"),
        ("handbook.docx", _zip("[Content_Types].xml", "xl/workbook.xml"), XLSX),
        ("page.html", b"%PDF-1.4 x", "application/pdf"),
        ("notes.md", b"<html><body>x</body></html>", "text/html"),
        ("data.json", b"not json at all", "text/plain"),
        ("deck.pptx", _zip("[Content_Types].xml", "xl/workbook.xml"), XLSX),
        ("scan.png", b"%PDF-1.7\n...", "application/pdf"),
        ("scan.jpg", b"\x89PNG\r\n\x1a\n....", "image/png"),
        ("tool.pdf", b"\x7fELF\x02\x01\x01\x00", "application/x-executable"),
    ],
)
def test_content_that_is_not_what_its_name_says_is_refused_naming_it(
    name: str, data: bytes, detected: str
) -> None:
    with pytest.raises(UnsupportedUpload) as info:
        accepted_type(name, _sniff(data))
    assert info.value.code == "unsupported_type"
    assert info.value.detected_type == detected
    assert f"({detected})" in info.value.reason and name in info.value.reason


@pytest.mark.parametrize(
    ("name", "data", "stored_as"),
    [
        ("leave.pdf", b"%PDF-1.7\n...", "application/pdf"),
        ("handbook.docx", _zip("[Content_Types].xml", "word/document.xml"), DOCX),
        ("page.htm", b"<!doctype html><p>x", "text/html"),
        ("fragment.html", b"<div><p>an HTML fragment</p></div>", "text/html"),
        ("notes.md", b"# Title", "text/markdown"),
        ("notes.md", b'["a list in markdown"]', "text/markdown"),
        ("table.csv", b"a,b\n1,2", "text/csv"),
        ("data.json", b'{"a": 1}', "application/json"),
        ("README", b"plain words", "text/plain"),
        ("renamed", b"%PDF-1.4 x", "application/pdf"),  # no extension: the bytes decide
        ("sheet.xlsx", _zip("[Content_Types].xml", "xl/workbook.xml"), XLSX),
        ("deck.pptx", _zip("[Content_Types].xml", "ppt/presentation.xml"), PPTX),
        ("scan.png", b"\x89PNG\r\n\x1a\n....", "image/png"),
        ("photo", b"\x89PNG\r\n\x1a\n....", "image/png"),
        ("scan.jpeg", b"\xff\xd8\xff\xe0....", "image/jpeg"),
        ("scan.tiff", b"II*\x00....", "image/tiff"),
        ("holidays.tsv", b"date\tname\n2026-01-01\tNew Year", "text/tab-separated-values"),
        ("announcement.eml", b"From: hr@example.com\nSubject: Benefits\n\nHello", "message/rfc822"),
    ],
)
def test_content_that_matches_its_name_is_accepted(name: str, data: bytes, stored_as: str) -> None:
    assert accepted_type(name, _sniff(data)) == stored_as


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
    assert up.key == "uploads/acme/Leave.pdf"
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


async def test_the_same_name_again_is_a_new_version_of_the_same_document(tmp_path: Path) -> None:
    landing = FolderLanding(tmp_path / "landing", max_bytes=1000)
    registry = SqliteRegistry(tmp_path / "r.db")
    queue = SqliteQueue(tmp_path / "q.db", name="parse")
    src = FolderSource("uploads", "acme", tmp_path / "landing/acme")

    async def upload_and_sync(data: bytes) -> None:
        await landing.receive("acme", "Leave Policy.md", chunks(data))
        await sync_source(
            src,
            registry=registry,
            blobstore=LocalBlobStore(tmp_path / "blobs"),
            parse_queue=queue,
            settings=Settings(),
            options=SyncOptions(),
        )

    await upload_and_sync(b"# Leave\n\nTwenty days.")
    await upload_and_sync(b"# Leave\n\nThirty days.")
    # one file (the name replaced), and its audience sidecar (a hidden folder, never listed)
    landed = sorted(p.name for p in (tmp_path / "landing/acme").iterdir())
    assert landed == [".audience", "Leave Policy.md"]
    assert [p.name for p in (tmp_path / "landing/acme/.audience").iterdir()] == [
        "Leave Policy.md.json"
    ]
    (doc,) = await registry.find(tenant="acme")
    versions = await registry.versions("acme", doc.doc_id)
    assert len(versions) == 2 and versions[0].seq > versions[1].seq  # newest first
    msgs = [parse_message(m.body) for m in await queue.receive(10)]
    assert {m.doc_id for m in msgs} == {doc.doc_id}
    assert [m.version for m in msgs] == [versions[1].version, versions[0].version]
    await queue.close()
    await registry.close()


def _leftovers(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


async def test_enospc_at_the_write_is_insufficient_storage_and_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The portable variant: the disk fills up under the landing write (fsync reports it)."""
    landing = FolderLanding(tmp_path / "landing", max_bytes=1 << 20)

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(InsufficientStorage) as info:
        await landing.receive("acme", "Leave.pdf", chunks(b"%PDF-1.4 ", b"x" * 5000))
    assert info.value.dependency == "landing" and "No space left" in info.value.detail
    assert _leftovers(tmp_path / "landing") == []


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB filesystem (tmpfs); mounting needs root."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


async def test_a_real_full_disk_is_insufficient_storage_and_leaves_no_file(
    tiny_disk: Path,
) -> None:
    landing = FolderLanding(tiny_disk, max_bytes=4 << 20)
    with pytest.raises(InsufficientStorage):
        await landing.receive("acme", "big.txt", chunks(b"words " * 400_000))  # 2.4 MB
    assert _leftovers(tiny_disk) == []
    small = await landing.receive("acme", "small.txt", chunks(b"fits"))  # the disk still works
    assert (tiny_disk / small.key).read_bytes() == b"fits"
    # and readiness says so before the next write fails
    check = free_disk_check({"data_dir": tiny_disk}, 2 << 20)
    with pytest.raises(InsufficientStorage) as info:
        await check()
    assert "data_dir has 1 MiB free, below the 2 MiB floor" in info.value.detail
    assert str(tiny_disk) not in info.value.detail
    await free_disk_check({"data_dir": tiny_disk}, 1 << 10)()


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
        def trigger(self, tenant: str, source_id: str, *, by: RunTrigger = RunTrigger.USER) -> dict:
            assert by is RunTrigger.EVENT  # recorded with the run as an event-triggered sync
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
