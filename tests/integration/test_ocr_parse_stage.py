"""A scanned PDF and a huge image through the parse stage as the parser service runs it: the real
sandbox worker process (Tesseract is its child), on the embedded adapters (SQLite queue and
registry, local blobs) and on the production ones (SQS, S3, DynamoDB on a moto server).

The document's record ends PARSED with each OCR page's confidence and the low-confidence pages
in its metadata (what ``GET /v1/documents/{id}`` shows), and its chunks hold the OCR text; the
huge image ends FAILED with ``image_too_large`` and the limit's name, never a crash."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from datatorag.config import Settings
from datatorag.domain.contracts import DocumentFetched, parse_message
from datatorag.domain.errors import PermanentError
from datatorag.domain.keys import content_hash, doc_id_for, raw_key, version_of
from datatorag.domain.models import DocumentRecord, DocumentStatus
from datatorag.parsing.ocr import LOW_CONFIDENCE, tesseract_path
from datatorag.pipeline.sandbox import ParseSandbox, SandboxLimits
from datatorag.pipeline.stages import ParseStage, StageDeps
from datatorag.ports import BlobStore, Queue, Registry
from tests.conformance import factories_aws, factories_embedded
from tests.fixtures import formats

pytestmark = pytest.mark.timeout(300)
TENANT, SOURCE = "acme", "scans"

if tesseract_path() is None:
    if os.environ.get("CI"):
        raise RuntimeError("tesseract is not installed (apt-get install tesseract-ocr)")
    pytest.skip("tesseract is not installed", allow_module_level=True)


@dataclass
class Adapters:
    registry: Registry
    blobs: BlobStore
    out: Queue
    index: Queue


@pytest.fixture(params=["embedded", "aws"])
async def adapters(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Adapters]:
    factories = factories_embedded if request.param == "embedded" else factories_aws
    made = Adapters(
        await factories.make_registry(request, tmp_path),
        await factories.make_blobstore(request, tmp_path),
        await factories.make_queue(request, tmp_path / "out"),
        await factories.make_queue(request, tmp_path / "index"),
    )
    try:
        yield made
    finally:
        for port in (made.registry, made.blobs, made.out, made.index):
            await port.close()


@pytest.fixture(scope="module")
async def sandbox() -> AsyncIterator[ParseSandbox]:
    box = ParseSandbox("minilm", SandboxLimits(workers=1, wall_s=120))
    try:
        yield box
    finally:
        await box.close()


async def _fetched(a: Adapters, path: str, data: bytes) -> DocumentFetched:
    """What the connector does for a new document: raw blob, registry version, message."""
    sha = content_hash(data)
    common = {
        "tenant": TENANT,
        "doc_id": doc_id_for(SOURCE, path),
        "version": version_of(sha),
        "seq": 1,
    }
    place = {"source": SOURCE, "path": path, "content_hash": sha}
    key = raw_key(TENANT, SOURCE, common["doc_id"], sha)  # type: ignore[arg-type]
    await a.blobs.put(key, data)
    await a.registry.put_version(DocumentRecord(**common, **place, blob_key=key, size=len(data)))  # type: ignore[arg-type]
    return DocumentFetched(**common, **place, blob_key=key, size=len(data))  # type: ignore[arg-type]


def _stage(a: Adapters, sandbox: ParseSandbox) -> ParseStage:
    deps = StageDeps(Settings(), a.registry, a.blobs)
    return ParseStage(deps, a.out, a.index, sandbox, max_tokens=256)


async def test_a_scanned_pdf_is_parsed_with_its_ocr_confidence_recorded(
    adapters: Adapters, sandbox: ParseSandbox
) -> None:
    good, truth = formats.scanned_page(11, paragraphs_n=2, heading="Travel Policy")
    poor, _ = formats.poor_scan(12, factor=6)
    msg = await _fetched(adapters, "/scans/travel.pdf", formats.scanned_pdf_with_text([good, poor]))
    await _stage(adapters, sandbox).handle(msg)

    record = await adapters.registry.get(TENANT, msg.doc_id, msg.version)
    assert record is not None and record.status is DocumentStatus.PARSED
    assert record.doc_type == "pdf" and record.page_count == 2 and record.title == "Travel Policy"
    meta = record.metadata
    assert meta["ocr.pages"] == "2" and meta["ocr.low_confidence_pages"] == "2"
    confidence = dict(p.split(":") for p in meta["ocr.confidence"].split(","))
    assert float(confidence["1"]) >= LOW_CONFIDENCE > float(confidence["2"])

    (raw,) = await adapters.out.receive(1)
    ready = parse_message(raw.body)
    chunks = json.loads(await adapters.blobs.get(ready.chunks_key))["chunks"]  # type: ignore[attr-defined]
    page1 = " ".join(c["text"] for c in chunks if c["page_start"] == 1)
    assert formats.char_error_rate(truth, page1) < 0.02


async def test_a_huge_image_ends_failed_with_its_reason(
    adapters: Adapters, sandbox: ParseSandbox
) -> None:
    msg = await _fetched(adapters, "/scans/poster.png", formats.huge_png(50_000, 50_000))
    with pytest.raises(PermanentError) as err:
        await _stage(adapters, sandbox).handle(msg)
    assert err.value.code == "image_too_large"
    record = await adapters.registry.get(TENANT, msg.doc_id, msg.version)
    assert record is not None and record.status is DocumentStatus.FAILED
    assert record.error_code == "image_too_large"
    assert record.reason is not None and "DATATORAG_LIMIT_MAX_IMAGE_PIXELS" in record.reason
    assert not await adapters.out.receive(1)  # nothing was sent on
