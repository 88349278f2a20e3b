"""Helpers to run ``datatorag up`` as a real process and watch it through its registry."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
API_KEY = "e2e-key"
TENANT = "acme"
OTHER_KEY = "other-key"  # a second tenant, on the same process
OTHER_TENANT = "globex"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stack:
    def __init__(
        self,
        data_dir: Path,
        source_dir: Path,
        *,
        max_bytes: int = 5_000_000,
        env: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.source_dir = source_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "DATATORAG_MODE": "embedded",
            "DATATORAG_DATA_DIR": str(data_dir),
            "DATATORAG_GATEWAY_PORT": str(self.port),
            "DATATORAG_API_KEYS": f"{API_KEY}={TENANT},{OTHER_KEY}={OTHER_TENANT}",
            # uploads and syncs are admin-only
            "DATATORAG_ADMIN_API_KEYS": f"{API_KEY},{OTHER_KEY}",
            "DATATORAG_MAX_DOCUMENT_BYTES": str(max_bytes),
            "DATATORAG_QUEUE_VISIBILITY_TIMEOUT_S": "20",
            "DATATORAG_LOG_LEVEL": "INFO",  # the log is attached to any failure
            "DATATORAG_LOG_FORMAT": "console",
            **(env or {}),
        }
        self.proc: subprocess.Popen | None = None
        self.log = data_dir / "up.log"
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        out = open(self.log, "ab")  # noqa: SIM115 - owned by the child process
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "datatorag.entrypoints.cli",
                "up",
                "--source",
                str(self.source_dir),
                "--sync-interval",
                "5",
            ],
            cwd=REPO,
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 300  # a loaded 2-core CI box is slow to import torch
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"datatorag up exited early:\n{self.tail()}"
            try:
                if self.http.get("/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise AssertionError(f"gateway did not come up:\n{self.tail()}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def peak_rss_bytes(self) -> int:
        """The process's peak resident set (VmHWM), as the kernel counts it."""
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmHWM")

    def documents(self, key: str = API_KEY) -> list[dict]:
        resp = self.http.get("/v1/documents", params={"limit": 1000}, headers={"X-API-Key": key})
        resp.raise_for_status()
        return resp.json()["documents"]

    def search(self, query: str, k: int = 5, **extra) -> dict:
        resp = self.http.post(
            "/v1/search",
            json={"query": query, "k": k, **extra},
            headers={"Authorization": f"Bearer {API_KEY}"},
        )
        assert resp.status_code == 200, resp.text
        return resp.json()

    def wait_until(self, predicate, timeout: float, what: str) -> list[dict]:
        deadline = time.monotonic() + timeout
        docs: list[dict] = []
        while time.monotonic() < deadline:
            assert self.proc is None or self.proc.poll() is None, f"process died:\n{self.tail()}"
            try:
                docs = self.documents()
            except httpx.HTTPError:
                docs = []
            if predicate(docs):
                return docs
            time.sleep(0.5)
        raise AssertionError(
            f"timed out waiting for {what}; documents: "
            f"{[(d['path'], d['status']) for d in docs]}\n{self.tail()}"
        )


@contextmanager
def running(stack: Stack) -> Iterator[Stack]:
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


def index_chunk_ids(data_dir: Path, doc_ids: list[str]) -> dict[str, list[str]]:
    """Chunk ids per document in the embedded index, read after the stack has stopped."""
    from datatorag.bootstrap.factory import make_vector_index
    from datatorag.config import Settings
    from datatorag.embedding.model_dir import resolve_model

    settings = Settings(data_dir=data_dir)
    spec = resolve_model(settings.embedding.model)

    async def read() -> dict[str, list[str]]:
        index = make_vector_index(settings, model_id=spec.model_id, dim=384)
        await index.ensure()
        try:
            return {d: [c.id for c in await index.get_chunks(TENANT, d)] for d in doc_ids}
        finally:
            await index.close()

    return asyncio.run(read())
