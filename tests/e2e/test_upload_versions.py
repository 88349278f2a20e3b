"""Uploads through ``datatorag up`` as a real process: the same name uploaded again is a new version
of the same document (the old version's chunks leave the index), content that is not what its name
says is refused naming what it is, and ``/readyz`` answers without local paths."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from tests.e2e.conftest import API_KEY, Stack, running

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

AUTH = {"X-API-Key": API_KEY}
NAME = "Remote Work.md"
FIRST = b"# Remote work\n\nEmployees may work from the lighthouse office on Tuesdays.\n"
SECOND = b"# Remote work\n\nEmployees may work from the harbour office on Fridays.\n"


def _indexed(stack: Stack, not_version: str | None = None) -> dict:
    docs = stack.wait_until(
        lambda ds: any(
            d["path"] == NAME and d["status"] == "INDEXED" and d["version"] != not_version
            for d in ds
        ),
        240,
        f"{NAME} indexed" + (f" in a version other than {not_version}" if not_version else ""),
    )
    (doc,) = [d for d in docs if d["path"] == NAME]
    return doc


def test_the_same_name_uploaded_again_replaces_the_document(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    stack = Stack(tmp_path / "data", corpus)
    with running(stack):
        ready = stack.http.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["disk"] == "ok"
        assert str(tmp_path) not in ready.text

        up = stack.http.post("/v1/documents", headers=AUTH, files={"file": (NAME, FIRST)})
        assert up.status_code == 202, up.text
        first = _indexed(stack)
        hits = stack.search("lighthouse office", mode="bm25")["hits"]
        assert [h["citation"]["doc_id"] for h in hits] == [first["doc_id"]]

        again = stack.http.post("/v1/documents", headers=AUTH, files={"file": (NAME, SECOND)})
        assert again.status_code == 202, again.text
        assert again.json()["detail"]["key"] == up.json()["detail"]["key"]
        second = _indexed(stack, not_version=first["version"])

        # one document, two versions; only the new one's chunks are in the index
        assert second["doc_id"] == first["doc_id"]
        assert [d["doc_id"] for d in stack.documents() if d["path"] == NAME] == [first["doc_id"]]
        detail = stack.http.get(f"/v1/documents/{first['doc_id']}", headers=AUTH).json()
        assert [v["version"] for v in detail["versions"]] == [second["version"], first["version"]]
        assert detail["chunks"] and {c["version"] for c in detail["chunks"]} == {second["version"]}
        assert detail["searchable"] is True
        assert stack.search("lighthouse", mode="bm25")["hits"] == []
        hybrid = stack.search("where can I work remotely?")["hits"]
        assert hybrid and all("lighthouse" not in h["text"] for h in hybrid)
        assert any("harbour office" in h["text"] for h in hybrid)

        # a ZIP under a PDF's name is refused at the door, naming what it is
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("payload.txt", "not a pdf")
        bad = stack.http.post(
            "/v1/documents",
            headers=AUTH,
            files={"file": ("policy.pdf", buf.getvalue(), "application/pdf")},
        )
        assert bad.status_code == 415, bad.text
        assert bad.json()["error"]["details"][0]["detected"] == "application/zip"
        assert "a ZIP archive (application/zip)" in bad.json()["error"]["message"]
