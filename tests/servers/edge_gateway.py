"""A real gateway process for the edge tests: ``python -m tests.servers.edge_gateway PORT``.

The REST app of ``datatorag.gateway`` exactly as production builds it (``create_app``: the edge,
its Redis limiter from ``DATATORAG_EDGE_REDIS_URL``, every middleware), served by uvicorn, over
the package's in-memory adapters (the edge is what these tests exercise, not the stores). One
document is indexed for tenant ``acme`` so searches return something. Settings come from the
environment, as in production. ``GatewayProcess`` starts it and waits for ``/healthz``.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class GatewayProcess:
    port: int
    proc: subprocess.Popen

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, env: dict[str, str], timeout_s: float = 60.0) -> GatewayProcess:
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.servers.edge_gateway", str(port)],
            cwd=REPO_ROOT,
            env={
                **os.environ,
                "PYTHONPATH": os.pathsep.join([os.path.join(REPO_ROOT, "libs"), REPO_ROOT]),
                **env,
            },
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise RuntimeError(f"gateway exited with {proc.returncode}: {err[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    return cls(port, proc)
            except OSError:
                if time.monotonic() > deadline:
                    proc.kill()
                    raise RuntimeError("gateway did not come up") from None
                time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def _main(port: int) -> None:
    from datatorag.config import Settings
    from datatorag.gateway import GatewayDeps, create_app
    from datatorag.runtime import UvicornServer
    from datatorag.testing.memory import MemoryRegistry, MemoryVectorIndex
    from datatorag.testing.memory.embedder import HashingEmbedder
    from datatorag.testing.records import chunk_record

    settings = Settings()
    embedder = HashingEmbedder(dim=64)
    index = MemoryVectorIndex(dim=64)
    text = "Parental leave is sixteen weeks at full pay."
    vector = (await embedder.embed_documents([text]))[0]
    updated = datetime(2026, 1, 1, tzinfo=UTC)
    chunk = chunk_record("leave-policy", text, vector, title="Leave policy", updated_at=updated)
    await index.ensure()
    await index.upsert([chunk])
    app = create_app(
        GatewayDeps(settings=settings, index=index, embedder=embedder, registry=MemoryRegistry())
    )
    server = UvicornServer(app, "127.0.0.1", port)
    await server.start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(_main(int(sys.argv[1])))
