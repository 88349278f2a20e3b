"""One hostile document must never hurt anyone else: the reproductions of the hostile-documents
issue, through ``datatorag up`` as a real process. Each bomb ends FAILED with its precise reason,
the process stays within its memory budget, the other tenant's upload is indexed meanwhile, and a
restart does not parse the bomb again."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import OTHER_KEY, Stack, running
from tests.fixtures import documents as docs
from tests.fixtures import hostile

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

# The process loads torch and MiniLM (~0.6-0.9 GB resident); the PDF grew it to 14.7 GB.
RSS_BUDGET = 1_600 * 1024 * 1024


def _write(root: Path, rel: str, data: bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _final(d: dict) -> bool:
    return d["status"] in ("INDEXED", "FAILED", "DELETED")


def test_bombs_fail_with_their_reason_and_hurt_no_one(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    _write(corpus, "bombs/no-title-63mb-text-layer.pdf", hostile.huge_text_pdf())
    _write(corpus, "bombs/5m-paragraphs.docx", hostile.docx_bomb())
    _write(corpus, "good/benefits.pdf", docs.text_pdf(pages=3, title="Benefits Guide"))
    _write(corpus, "good/leave.md", docs.markdown_document(title="Parental Leave"))
    stack = Stack(tmp_path / "data", corpus, max_bytes=50_000_000)
    with running(stack):
        # the other tenant uploads while the bombs are in the parser
        resp = stack.http.post(
            "/v1/documents",
            headers={"X-API-Key": OTHER_KEY},
            files={"file": ("tiny.txt", b"Globex lunch is at noon.", "text/plain")},
        )
        assert resp.status_code == 202, resp.text
        documents = stack.wait_until(
            lambda ds: len(ds) >= 4 and all(_final(d) for d in ds), 300, "all documents final"
        )
        by_path = {d["path"]: d for d in documents}
        pdf = by_path["bombs/no-title-63mb-text-layer.pdf"]
        assert (pdf["status"], pdf["error_code"]) == ("FAILED", "too_much_text"), pdf
        assert "10,000,000 characters" in pdf["reason"]
        bomb = by_path["bombs/5m-paragraphs.docx"]
        assert (bomb["status"], bomb["error_code"]) == ("FAILED", "decompression_bomb"), bomb
        assert "inflates to" in bomb["reason"]
        for rel in ("good/benefits.pdf", "good/leave.md"):
            assert by_path[rel]["status"] == "INDEXED", by_path[rel]
        deadline = time.monotonic() + 120
        while not any(d["status"] == "INDEXED" for d in stack.documents(OTHER_KEY)):
            assert time.monotonic() < deadline, "the other tenant's upload was not indexed"
            time.sleep(0.5)
        assert stack.peak_rss_bytes() < RSS_BUDGET, stack.peak_rss_bytes()
        parses_before = stack.log.read_text().count("permanent error; recorded")

    # a restart finds nothing to redo: the failures are final, their messages acknowledged
    with running(stack):
        time.sleep(12)  # two sync intervals of 5 s
        after = {d["path"]: (d["status"], d["version"]) for d in stack.documents()}
        assert after["bombs/no-title-63mb-text-layer.pdf"][0] == "FAILED"
        assert after == {d["path"]: (d["status"], d["version"]) for d in documents}
        assert stack.log.read_text().count("permanent error; recorded") == parses_before


def test_limits_in_time_and_memory_fail_the_document_not_the_process(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    # a long but legitimate PDF, with a wall-clock limit it cannot meet
    _write(corpus, "slow/manual.pdf", hostile.huge_text_pdf(pages=400, chars_per_page=20_000))
    _write(corpus, "good/leave.md", docs.markdown_document(title="Parental Leave"))
    env = {"DATATORAG_LIMIT_PARSE_WALL_S": "0.5", "DATATORAG_LIMIT_MAX_CHARS": "50000000"}
    stack = Stack(tmp_path / "data", corpus, max_bytes=50_000_000, env=env)
    with running(stack):
        documents = stack.wait_until(
            lambda ds: len(ds) >= 2 and all(_final(d) for d in ds), 240, "all documents final"
        )
        by_path = {d["path"]: d for d in documents}
        slow = by_path["slow/manual.pdf"]
        assert (slow["status"], slow["error_code"]) == ("FAILED", "parse_timeout"), slow
        assert by_path["good/leave.md"]["status"] == "INDEXED"

    # memory: a parse may add only 64 MiB, and this one needs far more
    corpus2 = tmp_path / "corpus2"
    _write(corpus2, "big/one-paragraph.txt", ("word " * 4_000_000).encode())
    _write(corpus2, "good/leave.md", docs.markdown_document(title="Parental Leave"))
    env = {"DATATORAG_LIMIT_PARSE_MEMORY_MB": "64", "DATATORAG_LIMIT_MAX_CHARS": "50000000"}
    stack2 = Stack(tmp_path / "data2", corpus2, max_bytes=50_000_000, env=env)
    with running(stack2):
        documents = stack2.wait_until(
            lambda ds: len(ds) >= 2 and all(_final(d) for d in ds), 240, "all documents final"
        )
        by_path = {d["path"]: d for d in documents}
        big = by_path["big/one-paragraph.txt"]
        assert (big["status"], big["error_code"]) == ("FAILED", "memory_limit"), big
        assert by_path["good/leave.md"]["status"] == "INDEXED"


def test_sigterm_during_a_long_parse_exits_cleanly_within_the_grace_period(
    tmp_path: Path,
) -> None:
    corpus = tmp_path / "corpus"
    _write(corpus, "slow/manual.pdf", hostile.huge_text_pdf(pages=1500, chars_per_page=20_000))
    env = {"DATATORAG_LIMIT_MAX_CHARS": "100000000", "DATATORAG_LIMIT_MAX_CHUNKS": "1000000"}
    stack = Stack(tmp_path / "data", corpus, max_bytes=200_000_000, env=env)
    stack.start()
    try:
        stack.wait_until(lambda ds: len(ds) >= 1, 120, "the PDF fetched")
        time.sleep(2)  # in the parser now
        assert stack.proc is not None
        started = time.monotonic()
        stack.proc.send_signal(signal.SIGTERM)
        code = stack.proc.wait(40)
        took = time.monotonic() - started
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running 40 s after SIGTERM:\n{stack.tail()}")
    finally:
        stack.stop()
    assert code == 0, stack.tail()
    assert took < 30, took
    log = stack.tail(200)
    assert log.rstrip().endswith("stopped"), log
    # the document was released, not failed: the next start parses it
    assert "parse_timeout" not in log and "FAILED" not in log
