"""Soak: 200 mixed documents, 10% of them hostile, through the embedded product (``datatorag up``)
and through the five production services on moto + OpenSearch. Every good document ends INDEXED
exactly once, every hostile one FAILED with its reason, and no process restarts.

The per-document limits are lowered for the run so the hostile documents stay small and the soak
stays a few minutes; each still trips the same code path as its full-size original."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import API_KEY, Stack, running
from tests.e2e.prod_stack import ProdStack, assert_indexed_once, delete_indices
from tests.fixtures import documents as docs
from tests.fixtures import hostile

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

LIMITS = {
    "DATATORAG_MAX_DOCUMENT_BYTES": str(2_000_000),
    "DATATORAG_LIMIT_MAX_CHARS": "300000",
    "DATATORAG_LIMIT_MAX_PAGES": "40",
    "DATATORAG_LIMIT_MAX_XML_BYTES": str(1_000_000),
    # the check below reads every document's detail back to back: an operator's audit, not a
    # client to throttle
    "DATATORAG_RATE_LIMIT_PER_S": "1000",
    "DATATORAG_RATE_LIMIT_BURST": "1000",
}


def _hostile() -> dict[str, tuple[Callable[[], bytes], str]]:
    """file -> (generator, the error code it must end with): 20 documents, 10 kinds."""
    kinds: list[tuple[str, int, Callable[[int], bytes], str]] = [
        ("corrupt-{}.pdf", 3, lambda i: docs.corrupt_pdf(("garbage", "truncated")[i % 2]),
         "pdf_corrupt"),
        ("encrypted-{}.pdf", 2, lambda i: docs.encrypted_pdf(), "pdf_encrypted"),
        ("scanned-{}.pdf", 2, lambda i: docs.scanned_pdf(), "pdf_no_text_layer"),
        ("empty-{}.txt", 2, lambda i: docs.empty_file(), "empty_file"),
        ("latin1-{}.txt", 2, lambda i: docs.invalid_utf8_text(), "invalid_utf8"),
        ("bomb-{}.docx", 2, lambda i: hostile.docx_bomb(100_000), "decompression_bomb"),
        ("wall-of-text-{}.md", 2, lambda i: ("lorem ipsum " * 40_000 + str(i)).encode(),
         "too_much_text"),
        ("zip-named-{}.pdf", 2, lambda i: hostile.not_a_pdf(), "unsupported_type"),
        ("long-{}.pdf", 2, lambda i: hostile.huge_text_pdf(pages=50, chars_per_page=400),
         "too_many_pages"),
        ("too-big-{}.txt", 1, lambda i: b"big file " * 300_000, "too_large"),
    ]  # fmt: skip
    out: dict[str, tuple[Callable[[], bytes], str]] = {}
    for pattern, count, make, code in kinds:
        for i in range(count):
            out["bad/" + pattern.format(i)] = (lambda make=make, i=i: make(i), code)
    return out


HOSTILE = _hostile()
N_GOOD = 180


def _good(n: int) -> bytes:
    body = "\n\n".join(docs.paragraphs(5000 + n, 3))
    return f"# Policy {n}\n\n{body}\n".encode()


def _corpus(root: Path) -> dict[str, str]:
    """Writes the corpus; returns the expected final state (INDEXED or an error code) by path."""
    expected: dict[str, str] = {}
    for n in range(N_GOOD):
        rel = f"good/policy-{n:03}.md"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(_good(n))
        expected[rel] = "INDEXED"
    for rel, (make, code) in HOSTILE.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(make())
        expected[rel] = code
    assert len(expected) == 200 and len(HOSTILE) == 20
    return expected


def _final(d: dict) -> bool:
    return d["status"] in ("INDEXED", "FAILED", "DELETED")


def _check_outcomes(by_path: dict[str, dict], expected: dict[str, str]) -> None:
    assert set(by_path) == set(expected), sorted(set(by_path) ^ set(expected))
    wrong = {
        p: (d["status"], d.get("error_code"), d.get("reason"))
        for p, d in by_path.items()
        if (d["status"] if expected[p] == "INDEXED" else d.get("error_code")) != expected[p]
        or (expected[p] != "INDEXED" and (d["status"] != "FAILED" or not d.get("reason")))
    }
    assert not wrong, wrong


def test_soak_embedded(tmp_path: Path) -> None:
    expected = _corpus(tmp_path / "corpus")
    stack = Stack(tmp_path / "data", tmp_path / "corpus", max_bytes=2_000_000, env=LIMITS)
    with running(stack):
        pid = stack.proc.pid if stack.proc else None
        documents = stack.wait_until(
            lambda ds: len(ds) >= 200 and all(_final(d) for d in ds), 900, "200 documents final"
        )
        _check_outcomes({d["path"]: d for d in documents}, expected)
        # exactly once: each indexed document's chunks are its current version's, no duplicates
        for d in documents:
            if d["status"] != "INDEXED":
                continue
            detail = stack.http.get(f"/v1/documents/{d['doc_id']}", headers={"X-API-Key": API_KEY})
            assert detail.status_code == 200, detail.text
            body = detail.json()
            ids = [c["id"] for c in body["chunks"]]
            assert len(ids) == len(set(ids)) == d["chunk_count"], d["path"]
            assert {c["version"] for c in body["chunks"]} == {d["version"]}, d["path"]
            assert len(body["versions"]) == 1, d["path"]
        assert stack.proc is not None and stack.proc.poll() is None and stack.proc.pid == pid


@pytest.mark.aws
@pytest.mark.opensearch
def test_soak_production(moto_server, opensearch_server, tmp_path: Path) -> None:
    stack = ProdStack(
        tmp_path / "prod",
        aws_endpoint=moto_server.endpoint_url,
        opensearch_url=opensearch_server.url,
        sources=["soak"],
        visibility_timeout_s=30,
        max_receives=5,
    )
    stack.env.update(LIMITS)
    expected = _corpus(stack.folders["soak"])
    try:
        stack.init()
        stack.start()
        pids = {name: s.proc.pid for name, s in stack.services.items() if s.proc}
        assert stack.sync("soak").status_code == 202
        by_path = stack.wait_docs(
            "soak",
            lambda ds: len(ds) >= 200 and all(_final(d) for d in ds.values()),
            1200,
            "200 documents final",
        )
        _check_outcomes(by_path, expected)
        for d in by_path.values():
            if d["status"] == "INDEXED":
                assert_indexed_once(stack.opensearch_url, stack.alias(), d)
        # no service restarted: the same processes ran from start to end
        assert {n: s.proc.pid for n, s in stack.services.items() if s.proc} == pids
        assert all(s.running for s in stack.services.values()), stack.tails()
    finally:
        stack.stop()
        delete_indices(stack.opensearch_url, stack.index_prefix)
