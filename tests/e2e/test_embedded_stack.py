"""End to end on the embedded default: ``datatorag up`` as a real process, a folder of good and
bad documents, search over HTTP, registry states, and a SIGKILL mid-ingestion."""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.e2e.conftest import API_KEY, Stack, index_chunk_ids, running
from tests.fixtures import documents as docs
from tests.fixtures import formats

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

GOOD = {
    "policies/parental-leave.md": lambda: docs.markdown_document(title="Parental Leave"),
    "policies/expenses.html": lambda: docs.html_document(title="Expense Policy"),
    "policies/handbook.docx": lambda: docs.docx_document(),
    "policies/benefits.pdf": lambda: docs.text_pdf(pages=4, table_page=2, title="Benefits Guide"),
    "policies/leave.txt": lambda: docs.utf16_text(),
    # the formats HR teams keep, and a scan (OCR)
    "hr/benefits.xlsx": lambda: formats.xlsx_workbook(),
    "hr/onboarding.pptx": lambda: formats.pptx_deck(),
    "hr/announcement.eml": lambda: formats.eml_message(),
    "hr/plans.csv": lambda: formats.csv_table(),
    "scans/leave-scan.pdf": lambda: formats.scanned_pdf_with_text(
        [formats.scanned_page(21, paragraphs_n=1, noise=0)[0]]
    ),
    "scans/leave-scan.png": lambda: formats.scanned_page(22, paragraphs_n=1, noise=0)[0],
}
BAD = {  # file -> the error code recorded against it
    "bad/corrupt.pdf": (lambda: docs.corrupt_pdf(), "pdf_corrupt"),
    "bad/encrypted.pdf": (lambda: docs.encrypted_pdf(), "pdf_encrypted"),
    "bad/scanned.pdf": (lambda: docs.scanned_pdf(), "pdf_no_text_layer"),
    "bad/empty.txt": (lambda: docs.empty_file(), "empty_file"),
    "bad/latin1.txt": (lambda: docs.invalid_utf8_text(), "invalid_utf8"),
    "bad/huge.txt": (lambda: b"x" * 400_000, "too_large"),
    "bad/poster.png": (lambda: formats.huge_png(50_000, 50_000), "image_too_large"),
}


def _write(root: Path, rel: str, data: bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _final(d: dict) -> bool:
    return d["status"] in ("INDEXED", "FAILED", "DELETED")


def test_good_and_bad_documents_end_in_the_right_state(tmp_path):
    corpus = tmp_path / "corpus"
    for rel, make in GOOD.items():
        _write(corpus, rel, make())
    for rel, (make, _) in BAD.items():
        _write(corpus, rel, make())
    # hostile names: a control character and bytes that are not UTF-8
    _write(corpus, "bad/bell\x07name.txt", b"Some text about leave.")
    (corpus / "bad").joinpath(os.fsdecode(b"caf\xe9.txt")).write_bytes(b"Coffee policy.")
    expected = len(GOOD) + len(BAD) + 2

    stack = Stack(tmp_path / "data", corpus, max_bytes=300_000)
    with running(stack):
        documents = stack.wait_until(
            lambda ds: len(ds) >= expected and all(_final(d) for d in ds),
            300,
            "all documents final",
        )
        by_path = {d["path"]: d for d in documents}
        for rel in GOOD:
            assert by_path[rel]["status"] == "INDEXED", by_path[rel]
            assert by_path[rel]["chunk_count"] >= 1
        for rel, (_, code) in BAD.items():
            assert by_path[rel]["status"] == "FAILED", by_path[rel]
            assert by_path[rel]["error_code"] == code, by_path[rel]
            assert by_path[rel]["reason"]
        hostile = [d for d in documents if d["path"] not in GOOD and d["path"] not in BAD]
        assert len(hostile) == 2 and all(d["status"] == "FAILED" and d["reason"] for d in hostile)

        # the chunk holding a sentence of page 2, cited with the right document and page
        marker = docs.page_marker(2)
        hits = stack.search(marker, k=3)["hits"]
        holding = [h for h in hits if marker in " ".join(h["text"].split())]
        assert holding, [h["text"][:80] for h in hits]
        cite = holding[0]["citation"]
        assert cite["path"] == "policies/benefits.pdf" and cite["title"] == "Benefits Guide"
        assert cite["page_start"] <= 2 <= cite["page_end"]
        # scans are OCR'd, with the confidence on the record; spreadsheets and decks are found
        scan = by_path["scans/leave-scan.pdf"]
        assert scan["metadata"]["ocr.pages"] == "1" and scan["title"] == "Leave Policy"
        assert "ocr.low_confidence_pages" not in scan["metadata"]
        assert by_path["scans/leave-scan.png"]["doc_type"] == "image"
        scanned_sentence = formats.page_text(21, 1)[0].split(". ")[1]
        hits = stack.search(scanned_sentence, k=5, mode="bm25")["hits"]
        assert "scans/leave-scan.pdf" in {h["citation"]["path"] for h in hits}
        hits = stack.search("Platinum plan 4 deductible", k=5, mode="bm25")["hits"]
        sheet = next(h for h in hits if h["citation"]["path"] == "hr/benefits.xlsx")
        assert sheet["text"].startswith("Medical plans") and "Monthly premium" in sheet["text"]
        hits = stack.search("collect your badge at reception", k=5)["hits"]
        deck = next(h for h in hits if h["citation"]["path"] == "hr/onboarding.pptx")
        assert deck["citation"]["page_start"] <= 2 <= deck["citation"]["page_end"]  # slide 2
        # and for the Markdown document
        md = stack.search("parental leave", k=5)
        assert "policies/parental-leave.md" in {h["citation"]["path"] for h in md["hits"]}

        # an upload through the gateway is indexed like any other document, for the caller's tenant
        resp = stack.http.post(
            "/v1/documents",
            headers={"X-API-Key": API_KEY},
            files={
                "file": (
                    "relocation.md",
                    b"# Relocation Policy\n\nMoving allowance is 4200 zorkmids.\n",
                    "text/markdown",
                )
            },
        )
        assert resp.status_code == 202, resp.text
        stack.wait_until(
            lambda ds: any(
                d["path"].endswith("relocation.md") and d["status"] == "INDEXED" for d in ds
            ),
            120,
            "the upload indexed",
        )
        hits = stack.search("moving allowance zorkmids", k=1, mode="bm25")["hits"]
        assert hits and hits[0]["citation"]["source"] == "uploads"
        # `datatorag up` answers out of the box (the extractive answerer), citing the upload
        answer = stack.http.post(
            "/v1/answer",
            headers={"X-API-Key": API_KEY},
            json={"query": "How much is the moving allowance?"},
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["provider"] == "extractive" and "4200 zorkmids" in body["answer"]
        assert body["citations"][0]["path"].endswith("relocation.md")
        bad = stack.http.post(
            "/v1/documents",
            headers={"X-API-Key": API_KEY},
            files={"file": ("empty.pdf", b"", "application/pdf")},
        )
        assert bad.status_code == 400 and "empty" in bad.text
        documents = stack.documents()

        # a second sync of an unchanged folder creates nothing new
        before = {(d["doc_id"], d["version"]) for d in documents}
        time.sleep(11)  # two more sync intervals of 5 s
        after = {(d["doc_id"], d["version"]) for d in stack.documents()}
        assert after == before


def test_sigkill_mid_ingestion_indexes_every_document_exactly_once(tmp_path):
    corpus = tmp_path / "corpus"
    n_docs = 24
    for i in range(n_docs):
        _write(
            corpus,
            f"pdfs/policy-{i:02}.pdf",
            docs.text_pdf(pages=10, seed=100 + i, title=f"Policy {i}"),
        )

    stack = Stack(tmp_path / "data", corpus)
    stack.start()
    try:
        # kill as soon as some, but not all, documents are indexed
        stack.wait_until(lambda ds: any(d["status"] == "INDEXED" for d in ds), 300, "first INDEXED")
        progress = Counter(d["status"] for d in stack.documents())
        stack.kill()
    finally:
        if stack.proc and stack.proc.poll() is None:
            stack.kill()
    assert progress["INDEXED"] < n_docs, f"ingestion finished before the kill: {progress}"

    with running(stack):
        documents = stack.wait_until(
            lambda ds: len(ds) == n_docs and all(d["status"] == "INDEXED" for d in ds),
            600,
            "all documents indexed after restart",
        )
    # one registry version per document, and exactly chunk_count chunks per document in the index
    assert len({d["doc_id"] for d in documents}) == n_docs
    ids = index_chunk_ids(stack.data_dir, [d["doc_id"] for d in documents])
    for d in documents:
        got = ids[d["doc_id"]]
        assert len(got) == len(set(got)) == d["chunk_count"], (
            d["path"],
            len(got),
            d["chunk_count"],
        )
        assert all(cid.startswith(f"{d['doc_id']}:{d['version']}:") for cid in got)
