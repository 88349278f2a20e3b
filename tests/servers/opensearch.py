"""Session fixture ``opensearch_server``: a real single-node OpenSearch 2.19 with the k-NN plugin.

Where it comes from, in order:

1. ``DATATORAG_TEST_OPENSEARCH_URL`` set: reuse that node (fast local loops:
   ``scripts/opensearch.sh start`` once, then export the URL it prints).
2. Java and Maven (or an already cached install): ``scripts/opensearch.sh`` installs OpenSearch into
   ``$DATATORAG_CACHE`` (once) and starts a node on a free port with its data in a temporary dir;
   it is stopped (and the dir removed) at the end of the session.
3. A Docker engine: testcontainers' OpenSearch container (needs the ``testcontainers`` package).
4. Otherwise ``unavailable`` (a failure in CI).

Tests keep out of each other's way with unique index names (see ``unique_prefix``).
The node has no k-NN native libraries: use the Lucene engine (a faiss index kills the node).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers._require import docker_available, unavailable

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "opensearch.sh"
VERSION = os.environ.get("OPENSEARCH_VERSION", "2.19.1")
START_TIMEOUT_S = 480  # first run downloads ~60 MB through Maven; later starts take 15-60 s


@dataclass(frozen=True)
class OpenSearchServer:
    url: str
    owned: bool  # started by this session (and stopped at its end)
    engine: str = "lucene"  # the k-NN engine this node supports
    run_dir: Path | None = None  # scripts/opensearch.sh's run dir, when it started the node

    def unique_prefix(self, name: str = "t") -> str:
        """An index prefix no other test (or concurrent session) uses."""
        return f"dtr-test-{name}-{uuid.uuid4().hex[:10]}"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_cluster/health", timeout=3) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _cache_dir() -> Path:
    return Path(os.environ.get("DATATORAG_CACHE") or Path.home() / ".cache" / "datatorag")


def _binaries_available() -> bool:
    installed = (_cache_dir() / f"opensearch-{VERSION}" / ".datatorag-installed").exists()
    java = shutil.which("java") is not None
    return java and (installed or shutil.which("mvn") is not None)


def run_script(action: str, run_dir: Path, port: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OPENSEARCH_PORT": str(port)}
    return subprocess.run(
        ["bash", str(SCRIPT), action, str(run_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S,
        check=False,
    )


def _from_script(run_dir: Path) -> Iterator[OpenSearchServer]:
    for _attempt in range(3):  # a free port can be taken before the node binds it: pick another
        port = _free_port()
        try:
            started = run_script("start", run_dir, port)
        except subprocess.TimeoutExpired:
            run_script("stop", run_dir, port)
            unavailable("OpenSearch", f"scripts/opensearch.sh start took over {START_TIMEOUT_S}s")
            return
        if started.returncode == 0 or "Address already in use" not in started.stderr:
            break
    if started.returncode != 0:
        unavailable("OpenSearch", f"scripts/opensearch.sh start failed:\n{started.stderr[-3000:]}")
    url = started.stdout.strip().splitlines()[-1]
    try:
        yield OpenSearchServer(url=url, owned=True, run_dir=run_dir)
    finally:
        run_script("stop", run_dir, port)


def _from_container() -> Iterator[OpenSearchServer]:
    try:
        from testcontainers.opensearch import OpenSearchContainer
    except ImportError:
        unavailable("OpenSearch", "no local Java/Maven and the testcontainers package is missing")
        return
    # The official image ships the k-NN native libraries, so faiss works there too.
    with OpenSearchContainer(f"opensearchproject/opensearch:{VERSION}") as container:
        host = container.get_container_host_ip()
        port = container.get_exposed_port(9200)
        yield OpenSearchServer(url=f"http://{host}:{port}", owned=True, engine="lucene")


@pytest.fixture(scope="session")
def opensearch_server() -> Iterator[OpenSearchServer]:
    given = os.environ.get("DATATORAG_TEST_OPENSEARCH_URL")
    if given:
        url = given.rstrip("/")
        if not _healthy(url):
            pytest.fail(f"DATATORAG_TEST_OPENSEARCH_URL={url} does not answer", pytrace=False)
        yield OpenSearchServer(url=url, owned=False)
    elif _binaries_available():
        # Not under pytest's basetemp: concurrent pytest sessions of the same user prune each
        # other's old basetemps, which would pull the data dir from under a running node.
        run_dir = Path(tempfile.mkdtemp(prefix="datatorag-opensearch-"))
        try:
            yield from _from_script(run_dir)
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)
    elif docker_available():
        yield from _from_container()
    else:
        unavailable("OpenSearch", "needs Java 17+ and Maven (scripts/opensearch.sh) or Docker")
