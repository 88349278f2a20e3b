"""Clean failures of the REST gateway, on both index adapters (embedded LanceDB and a real
OpenSearch node) and both landing zones (a folder and a moto S3 bucket): control characters in
any filter are a 422 naming the field, a missing index is a 503, an upload that is not what its
name says is a 415 naming the detected type, a full disk is a 507 that leaves no file behind, and
the same name uploaded again lands on the same key (a new version of the same document)."""

from __future__ import annotations

import errno
import io
import os
import shutil
import subprocess
import tempfile
import uuid
import zipfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from datatorag.adapters.embedded.lancedb_index import LanceDbIndex
from datatorag.adapters.embedded.sqlite_registry import SqliteRegistry
from datatorag.adapters.opensearch import OpenSearchIndex
from datatorag.bootstrap.gateway import upload_hook
from datatorag.config import EmbeddingSettings, OpenSearchSettings, Settings
from datatorag.connectors import landing as landing_module
from datatorag.connectors.landing import FolderLanding, LandingZone, S3Landing
from datatorag.embedding.local import LocalEmbedder
from datatorag.gateway import GatewayDeps, create_app
from datatorag.ports import VectorIndex
from datatorag.testing.records import chunk_record

pytestmark = pytest.mark.timeout(300)

KEY = "key-acme"
AUTH = {"Authorization": f"Bearer {KEY}"}
TEXT = "Parental leave is sixteen weeks of fully paid leave."
CONTROL = ["\x00", "\x01", "\x07", "\x1b", "\x1f", "\x7f", "\x85", "\x9f"]
FILTER_FIELDS = ["sources", "doc_types", "doc_ids"]


@pytest.fixture(scope="module")
def embedder() -> LocalEmbedder:
    return LocalEmbedder(EmbeddingSettings())


@pytest.fixture(params=["lancedb", "opensearch"])
async def index(
    request: pytest.FixtureRequest, tmp_path: Path, embedder: LocalEmbedder
) -> AsyncIterator[VectorIndex]:
    made: VectorIndex
    if request.param == "lancedb":
        made = LanceDbIndex(tmp_path / "lancedb", dim=embedder.dim, table="chunks")
    else:
        server = request.getfixturevalue("opensearch_server")
        settings = OpenSearchSettings(
            url=server.url, engine=server.engine, index_prefix=server.unique_prefix("gwf")
        )
        made = OpenSearchIndex(settings, model_id=embedder.model_id, dim=embedder.dim, replicas=0)
    await made.ensure()
    (vector,) = await embedder.embed_documents([TEXT], ["Leave"])
    updated = datetime(2026, 1, 1, tzinfo=UTC)
    record = chunk_record("leave", TEXT, vector, title="Leave", doc_type="md", updated_at=updated)
    await made.upsert([record])
    if isinstance(made, OpenSearchIndex):
        await made.refresh()
    yield made
    if isinstance(made, OpenSearchIndex):
        await made.drop()
    await made.close()


def _settings(root: Path) -> Settings:
    return Settings(
        api_keys=f"{KEY}=acme",
        admin_api_keys=KEY,  # uploads are admin-only
        data_dir=root,
        max_document_bytes=10 << 20,
    )


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[SqliteRegistry]:
    reg = SqliteRegistry(tmp_path / "registry.sqlite3")
    yield reg
    await reg.close()


def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")


@pytest.fixture
async def gateway(
    tmp_path: Path, index: VectorIndex, embedder: LocalEmbedder, registry: SqliteRegistry
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(GatewayDeps(_settings(tmp_path), index, embedder, registry))
    async with _client(app) as c:
        yield c


# ------------------------------------------------------------------------------ filters


async def test_the_index_answers_before_anything_breaks(gateway: httpx.AsyncClient) -> None:
    resp = await gateway.post("/v1/search", json={"query": "parental leave"}, headers=AUTH)
    assert resp.status_code == 200, resp.text
    assert [h["citation"]["doc_id"] for h in resp.json()["hits"]] == ["leave"]


@pytest.mark.parametrize("field", FILTER_FIELDS)
async def test_control_characters_in_any_filter_are_422_naming_the_field(
    gateway: httpx.AsyncClient, field: str
) -> None:
    for ch in CONTROL:
        for mode in ("hybrid", "bm25", "knn"):
            body = {"query": "leave", "mode": mode, "filters": {field: ["hr", f"h{ch}r"]}}
            resp = await gateway.post("/v1/search", json=body, headers=AUTH)
            assert resp.status_code == 422, (repr(ch), mode, resp.text)
            error = resp.json()["error"]
            (detail,) = error["details"]
            assert detail["field"] == f"filters.{field}.1"
            assert f"control characters (found U+{ord(ch):04X})" in detail["message"]
        query = await gateway.post(
            "/v1/query", json={"query": "leave", "filters": {field: [ch]}}, headers=AUTH
        )
        assert query.status_code == 422 and f"filters.{field}.0" in query.text


async def test_control_characters_in_document_lookups_are_422(
    gateway: httpx.AsyncClient,
) -> None:
    listing = await gateway.get("/v1/documents", params={"source": "h\x00r"}, headers=AUTH)
    assert listing.status_code == 422, listing.text
    assert listing.json()["error"]["details"][0]["field"] == "query.source"
    one = await gateway.get("/v1/documents/le%07ave", headers=AUTH)
    assert one.status_code == 422, one.text
    assert one.json()["error"]["details"][0]["field"] == "path.doc_id"


async def test_control_characters_in_the_query_text_are_no_server_error(
    gateway: httpx.AsyncClient,
) -> None:
    """The query is free text, not a filter: it is searched, never a 500."""
    for mode in ("hybrid", "bm25", "knn"):
        resp = await gateway.post(
            "/v1/search", json={"query": "parental\x00 leave\x07", "mode": mode}, headers=AUTH
        )
        assert resp.status_code == 200, (mode, resp.text)


# ------------------------------------------------------------------------------ missing index


async def _delete_the_index(index: VectorIndex) -> None:
    if isinstance(index, LanceDbIndex):
        shutil.rmtree(index.path)
    else:
        assert isinstance(index, OpenSearchIndex)
        await index.client.indices.delete(index=f"{index.pattern_base}*")


async def test_a_missing_index_is_503_on_search_and_lookup(
    gateway: httpx.AsyncClient, index: VectorIndex
) -> None:
    await _delete_the_index(index)
    for mode in ("hybrid", "bm25", "knn"):
        resp = await gateway.post(
            "/v1/search", json={"query": "parental leave", "mode": mode}, headers=AUTH
        )
        assert resp.status_code == 503, (mode, resp.text)
        assert resp.json()["error"]["code"] == "unavailable"
        assert resp.headers["retry-after"] == "5"
        assert "/" not in resp.json()["error"]["message"].replace(" is unavailable", "")
    ready = await gateway.get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["vector_index"] != "ok"


# ------------------------------------------------------------------------------ uploads


def _zip(*names: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name in names:
            z.writestr(name, "<x/>")
    return buf.getvalue()


PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
MISNAMED = [
    ("policy.pdf", _zip("notes.txt"), "application/zip"),
    ("policy.pdf", b"<!DOCTYPE html><html><body>leave</body></html>", "text/html"),
    ("handbook.docx", PDF, "application/pdf"),
    ("handbook.docx", _zip("[Content_Types].xml", "xl/workbook.xml"), "application/vnd."),
    ("page.html", PDF, "application/pdf"),
]


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


class Landed:
    """A landing zone behind a gateway, and what it holds."""

    def __init__(self, landing: LandingZone, files: Any) -> None:
        self.landing = landing
        self.files = files  # async () -> {key: bytes}
        self.triggered: list[tuple[str, str]] = []


@pytest.fixture(params=["folder", "s3"])
async def landed(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Landed]:
    if request.param == "folder":
        root = tmp_path / "landing"

        async def folder_files() -> dict[str, bytes]:
            return _files(root)

        yield Landed(FolderLanding(root, max_bytes=10 << 20), folder_files)
        return
    from datatorag.adapters.aws.provision import ensure_bucket

    moto = request.getfixturevalue("moto_server")
    clients = moto.clients()
    bucket = f"landing-{uuid.uuid4().hex[:12]}"
    await ensure_bucket(clients, bucket, sse=None)

    async def s3_files() -> dict[str, bytes]:
        s3 = await clients.client("s3")
        listed = await s3.list_objects_v2(Bucket=bucket)
        out = {}
        for item in listed.get("Contents") or []:
            obj = await s3.get_object(Bucket=bucket, Key=item["Key"])
            out[item["Key"]] = await obj["Body"].read()
        return out

    yield Landed(S3Landing(clients, bucket, max_bytes=10 << 20, prefix="in"), s3_files)
    await clients.close()


@pytest.fixture
async def uploads(
    tmp_path: Path, landed: Landed, embedder: LocalEmbedder, registry: SqliteRegistry
) -> AsyncIterator[httpx.AsyncClient]:
    async def trigger(tenant: str, source: str) -> None:
        landed.triggered.append((tenant, source))

    index = LanceDbIndex(tmp_path / "lancedb", dim=embedder.dim)
    deps = GatewayDeps(
        _settings(tmp_path),
        index,
        embedder,
        registry,
        on_upload=upload_hook(landed.landing, trigger),
    )
    async with _client(create_app(deps)) as c:
        yield c
    await index.close()


async def _upload(client: httpx.AsyncClient, name: str, data: bytes) -> httpx.Response:
    return await client.post(
        "/v1/documents", files={"file": (name, data, "application/pdf")}, headers=AUTH
    )


@pytest.mark.parametrize(("name", "data", "detected"), MISNAMED)
async def test_content_not_matching_its_name_is_415_naming_the_detected_type(
    uploads: httpx.AsyncClient, landed: Landed, name: str, data: bytes, detected: str
) -> None:
    resp = await _upload(uploads, name, data)
    assert resp.status_code == 415, resp.text
    error = resp.json()["error"]
    assert error["code"] == "unsupported_type"
    (detail,) = error["details"]
    assert detail["field"] == "file" and detail["detected"].startswith(detected)
    assert f"({detail['detected']})" in error["message"] and name in error["message"]
    assert await landed.files() == {} and landed.triggered == []


async def test_the_same_name_again_lands_on_the_same_key(
    uploads: httpx.AsyncClient, landed: Landed
) -> None:
    first = await _upload(uploads, "Leave Policy.md", b"# Leave\n\nTwenty days.")
    second = await _upload(uploads, "Leave Policy.md", b"# Leave\n\nThirty days.")
    assert first.status_code == second.status_code == 202, second.text
    key = first.json()["detail"]["key"]
    assert second.json()["detail"]["key"] == key and key.endswith("acme/Leave Policy.md")
    assert first.json()["detail"]["sha256"] != second.json()["detail"]["sha256"]
    # the file, replaced, and its audience sidecar (no audience given: the source's rules)
    sidecar = key.replace("acme/Leave Policy.md", "acme/.audience/Leave Policy.md.json")
    assert await landed.files() == {key: b"# Leave\n\nThirty days.", sidecar: b'{"groups": null}'}
    assert landed.triggered == [("acme", "uploads")] * 2


async def test_a_full_disk_is_507_and_leaves_no_file(
    uploads: httpx.AsyncClient, landed: Landed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC where the bytes are written: the landing folder's file, or the upload spool that
    an S3 landing reads from (past 8 MiB it lives in the temporary directory)."""

    def full(*_: Any) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    if isinstance(landed.landing, FolderLanding):
        monkeypatch.setattr(os, "fsync", full)
        data = PDF
    else:
        # the spool moving to disk past its memory limit is where a full temp dir bites (the
        # landing's spool only: the multipart parser has one of its own)
        class FullSpool(tempfile.SpooledTemporaryFile):  # type: ignore[type-arg]
            def rollover(self) -> None:
                full()

        monkeypatch.setattr(landing_module, "SpooledTemporaryFile", FullSpool)
        data = PDF + b"x" * (9 << 20)  # past the spool's memory limit
    resp = await _upload(uploads, "Leave.pdf", data)
    assert resp.status_code == 507, resp.text
    assert resp.json()["error"]["code"] == "insufficient_storage"
    assert resp.headers["retry-after"]
    assert "/" not in resp.json()["error"]["message"]
    assert await landed.files() == {} and landed.triggered == []


async def test_a_full_temp_dir_while_the_body_is_read_is_507(
    uploads: httpx.AsyncClient, landed: Landed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before our code runs, the multipart parser spools a body over 1 MiB to the temporary
    directory; FastAPI calls any failure there a 400, a full disk is not the client's fault."""

    def full(*_: Any) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("tempfile.SpooledTemporaryFile.rollover", full)
    resp = await _upload(uploads, "Leave.pdf", PDF + b"x" * (2 << 20))
    assert resp.status_code == 507, resp.text
    assert resp.json()["error"]["code"] == "insufficient_storage"
    assert await landed.files() == {} and landed.triggered == []
    monkeypatch.undo()
    malformed = await uploads.post(
        "/v1/documents",
        content=b"--xx\r\nnot a part",
        headers={**AUTH, "Content-Type": "multipart/form-data; boundary=xx"},
    )
    assert malformed.status_code in (400, 422), malformed.text  # a bad body stays the client's


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


async def test_an_upload_onto_a_really_full_disk_is_507_and_leaves_no_file(
    tmp_path: Path, tiny_disk: Path, embedder: LocalEmbedder, registry: SqliteRegistry
) -> None:
    triggered: list[Any] = []

    async def trigger(tenant: str, source: str) -> None:
        triggered.append((tenant, source))

    index = LanceDbIndex(tmp_path / "lancedb", dim=embedder.dim)
    landing = FolderLanding(tiny_disk, max_bytes=10 << 20)
    deps = GatewayDeps(
        _settings(tmp_path), index, embedder, registry, on_upload=upload_hook(landing, trigger)
    )
    async with _client(create_app(deps)) as c:
        resp = await _upload(c, "big.txt", b"words " * 400_000)  # 2.4 MB onto 1 MiB
        assert resp.status_code == 507, resp.text
        assert _files(tiny_disk) == {}
        assert triggered == []
        small = await _upload(c, "small.txt", b"still fits")
        assert small.status_code == 202, small.text
    await index.close()


async def test_a_missing_landing_bucket_is_503(
    moto_server: Any, tmp_path: Path, embedder: LocalEmbedder, registry: SqliteRegistry
) -> None:
    clients = moto_server.clients()
    landing = S3Landing(clients, f"missing-{uuid.uuid4().hex[:12]}", max_bytes=1 << 20)

    async def trigger(tenant: str, source: str) -> None:
        raise AssertionError("nothing landed, nothing to sync")

    index = LanceDbIndex(tmp_path / "lancedb", dim=embedder.dim)
    deps = GatewayDeps(
        _settings(tmp_path), index, embedder, registry, on_upload=upload_hook(landing, trigger)
    )
    async with _client(create_app(deps)) as c:
        resp = await _upload(c, "Leave.pdf", PDF)
    assert resp.status_code == 503, resp.text
    assert resp.json()["error"]["message"].startswith("landing bucket missing-")
    await index.close()
    await clients.close()
