"""Helpers for the production-path end-to-end tests: the five services as separate processes on
SQS + S3 + DynamoDB (moto server) and OpenSearch, plus the tools to look inside them.

* ``ProdStack``: unique queue/bucket/table/index names, ``datatorag init``, a sources file, and
  one ``Service`` per process (its own ports and log file, attached to any failure).
* ``HoldingProxy``: an HTTP proxy in front of OpenSearch that forwards ``_bulk`` requests but
  holds their responses, so a test can catch the indexer in the middle of a message.
* ``OpenSearchNode``: a dedicated node (``scripts/opensearch.sh``) a test may stop and start.
* ``aws``-side helpers read queues, DLQs and the registry through the production adapters.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

import httpx

from tests.e2e.conftest import API_KEY, REPO, TENANT, free_port

SCRIPT = REPO / "scripts" / "opensearch.sh"
SERVICE_START_TIMEOUT_S = 240  # a loaded 2-core box imports torch slowly
_DIRECT = httpx.Client(timeout=30, trust_env=False)  # never through a proxy from the environment


def _no_proxy_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


class Service:
    """One ``datatorag serve <name>`` process with its own HTTP port and log file."""

    def __init__(self, name: str, env: dict[str, str], port: int, log: Path) -> None:
        self.name = name
        self.env = env
        self.port = port
        self.log = log
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Service:
        out = open(self.log, "ab")  # noqa: SIM115 - owned by the child process
        out.write(f"\n===== start {time.strftime('%H:%M:%S')} =====\n".encode())
        out.flush()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "datatorag.entrypoints.cli", "serve", self.name],
            cwd=REPO,
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        out.close()
        return self

    def wait_healthy(self, timeout: float = SERVICE_START_TIMEOUT_S) -> Service:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited with {self.proc.returncode} during startup:\n{self.tail()}"
                )
            try:
                if _DIRECT.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"{self.name} not healthy after {timeout:.0f}s:\n{self.tail()}")

    def readyz(self) -> httpx.Response:
        return _DIRECT.get(f"{self.url}/readyz", timeout=30)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no release of in-flight messages, no cleanup of any kind."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self, timeout: float = 60) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def tail(self, n: int = 40) -> str:
        lines = self.log_text().splitlines()[-n:]
        return f"--- {self.name} ({self.log}) ---\n" + "\n".join(lines)


class ProdStack:
    """Production mode on real servers, every name unique to this stack."""

    SERVICES = ("embedder", "connector", "parser", "indexer", "query-gateway")

    def __init__(
        self,
        root: Path,
        *,
        aws_endpoint: str,
        opensearch_url: str,
        sources: Iterable[str],
        visibility_timeout_s: int = 10,
        max_receives: int = 3,
        sync_interval_s: float = 600,
    ) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        tag = uuid.uuid4().hex[:8]
        self.tag = tag
        self.opensearch_url = opensearch_url.rstrip("/")
        self.queues = {q: f"e2e-{tag}-{q}" for q in ("parse", "embed", "index")}
        self.bucket = f"e2e-{tag}-docs"
        self.table = f"e2e-{tag}-registry"
        self.index_prefix = f"dtr-e2e-{tag}"
        self.visibility_timeout_s = visibility_timeout_s
        self.max_receives = max_receives
        self.aws_endpoint = aws_endpoint
        # Long sync intervals: documents arrive when a test asks for a sync through the gateway.
        self.folders = {s: root / "sources" / s for s in sources}
        for folder in self.folders.values():
            folder.mkdir(parents=True, exist_ok=True)
        self.sources_file = root / "sources.yaml"
        self.sources_file.write_text(
            json.dumps(
                {
                    "tenants": {
                        TENANT: {
                            "sources": [
                                {
                                    "id": s,
                                    "type": "folder",
                                    "path": str(p),
                                    "interval_s": sync_interval_s,
                                }
                                for s, p in self.folders.items()
                            ]
                        }
                    }
                }
            )
        )  # JSON is YAML
        self.ports = {name: free_port() for name in self.SERVICES}
        self.env = {
            **_no_proxy_env(),
            "DATATORAG_MODE": "production",
            "AWS_ENDPOINT_URL": aws_endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "DATATORAG_AWS_REGION": "us-east-1",
            "DATATORAG_AWS_BUCKET": self.bucket,
            "DATATORAG_AWS_REGISTRY_TABLE": self.table,
            "DATATORAG_QUEUE_PARSE": self.queues["parse"],
            "DATATORAG_QUEUE_EMBED": self.queues["embed"],
            "DATATORAG_QUEUE_INDEX": self.queues["index"],
            "DATATORAG_QUEUE_VISIBILITY_TIMEOUT_S": str(visibility_timeout_s),
            "DATATORAG_QUEUE_MAX_RECEIVES": str(max_receives),
            "DATATORAG_QUEUE_WAIT_TIME_S": "2",
            "DATATORAG_OPENSEARCH_URL": self.opensearch_url,
            "DATATORAG_OPENSEARCH_INDEX_PREFIX": self.index_prefix,
            "DATATORAG_OPENSEARCH_TIMEOUT_S": "15",
            "DATATORAG_EMBEDDING_SERVICE_URL": f"http://127.0.0.1:{self.ports['embedder']}",
            "DATATORAG_EMBEDDER_PORT": str(self.ports["embedder"]),
            "DATATORAG_GATEWAY_PORT": str(self.ports["query-gateway"]),
            # production takes static keys only as digests, and needs the service token
            "DATATORAG_API_KEYS": f"sha256:{hashlib.sha256(API_KEY.encode()).hexdigest()}={TENANT}",
            "DATATORAG_ADMIN_API_KEYS": f"sha256:{hashlib.sha256(API_KEY.encode()).hexdigest()}",
            "DATATORAG_SERVICE_TOKEN": "e2e-service-token-0123456789",
            "DATATORAG_SOURCES_FILE": str(self.sources_file),
            "DATATORAG_CONNECTOR_URL": f"http://127.0.0.1:{self.ports['connector']}",
            "DATATORAG_LOG_LEVEL": "INFO",  # the logs are attached to any failure
            "DATATORAG_LOG_FORMAT": "console",
        }
        self.services: dict[str, Service] = {}
        self.retired: list[Service] = []  # replaced processes, kept for their logs
        self.startup_s = 0.0
        self.init_output = ""
        self.gateway = httpx.Client(
            base_url=f"http://127.0.0.1:{self.ports['query-gateway']}", timeout=60, trust_env=False
        )

    # -- lifecycle ------------------------------------------------------------------------------
    def run_cli(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "datatorag.entrypoints.cli", *args],
            cwd=REPO,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def init(self) -> str:
        done = self.run_cli("init")
        assert done.returncode == 0, f"datatorag init failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def service(self, name: str, *, log_suffix: str = "", **env: str) -> Service:
        """A (not yet started) process for ``name``; ``env`` overrides variables for it alone."""
        fixed = name in ("embedder", "query-gateway", "connector")  # others reach these ports
        port = self.ports[name] if fixed else free_port()
        extra = {"DATATORAG_HEALTH_PORT": str(port)} if name != "embedder" else {}
        return Service(
            name, {**self.env, **extra, **env}, port, self.root / f"{name}{log_suffix}.log"
        )

    def start(self, *names: str) -> None:
        """Start ``names`` concurrently; the indexer and the gateway learn the model from the
        embedder service at startup, so they wait for it."""
        names = names or self.SERVICES
        needs_embedder = [n for n in names if n in ("indexer", "query-gateway")]
        first = [n for n in names if n not in needs_embedder]
        for n in first:
            self._run(n)
        if needs_embedder and "embedder" in first:
            self.services["embedder"].wait_healthy()
        for n in needs_embedder:
            self._run(n)
        for n in names:
            self.services[n].wait_healthy()

    def _run(self, name: str) -> None:
        self.services[name] = self.service(name).start()

    def replace(self, name: str, new: Service) -> Service:
        """Make ``new`` (started) the stack's ``name``; the old process must be stopped or dead."""
        old = self.services.get(name)
        if old is not None:
            assert not old.running, f"{name} still running"
            self.retired.append(old)
        if new in self.retired:  # an extra process promoted to the stack's own
            self.retired.remove(new)
        self.services[name] = new
        return new

    def extra(self, svc: Service) -> Service:
        """Track a process a test runs beside the stack: its log joins failure reports, and the
        stack stops it at the end if the test could not."""
        self.retired.append(svc)
        return svc

    def restore(self, name: str) -> Service:
        """Make sure ``name`` runs with the stack's own settings again (a test swapped it)."""
        current = self.services.get(name)
        if (
            current is not None
            and current.running
            and all(current.env.get(k) == v for k, v in self.env.items())
        ):
            return current
        if current is not None:
            current.stop()
        return self.replace(name, self.service(name).start()).wait_healthy()

    def stop(self) -> None:
        # producers first, so nothing new arrives while the consumers finish
        for name in ("connector", "query-gateway", "parser", "embedder", "indexer"):
            if name in self.services:
                self.services[name].stop()
        for svc in self.retired:
            svc.stop(10)
        self.gateway.close()

    def tails(self, n: int = 30) -> str:
        return "\n".join(s.tail(n) for s in [*self.retired, *self.services.values()])

    def fail(self, what: str) -> None:
        raise AssertionError(f"{what}\n{self.tails()}")

    # -- the gateway ----------------------------------------------------------------------------
    def documents(self, **params: Any) -> list[dict]:
        resp = self.gateway.get(
            "/v1/documents", params={"limit": 1000, **params}, headers={"X-API-Key": API_KEY}
        )
        assert resp.status_code == 200, resp.text
        return resp.json()["documents"]

    def by_path(self, source: str) -> dict[str, dict]:
        return {d["path"]: d for d in self.documents(source=source)}

    def search(self, query: str, k: int = 5, **extra: Any) -> dict:
        resp = self.gateway.post(
            "/v1/search",
            json={"query": query, "k": k, **extra},
            headers={"Authorization": f"Bearer {API_KEY}"},
        )
        assert resp.status_code == 200, resp.text
        return resp.json()

    def sync(self, source: str) -> httpx.Response:
        return self.gateway.post(
            f"/v1/sources/{source}/sync", headers={"Authorization": f"Bearer {API_KEY}"}
        )

    def wait_docs(
        self, source: str, predicate: Callable[[dict[str, dict]], bool], timeout: float, what: str
    ) -> dict[str, dict]:
        deadline = time.monotonic() + timeout
        docs: dict[str, dict] = {}
        while time.monotonic() < deadline:
            dead = [s.name for s in self.services.values() if s.proc and not s.running]
            if dead:
                self.fail(f"service(s) died while waiting for {what}: {dead}")
            try:
                docs = self.by_path(source)
            except (httpx.HTTPError, AssertionError):
                docs = {}
            if predicate(docs):
                return docs
            time.sleep(0.5)
        self.fail(
            f"timed out after {timeout:.0f}s waiting for {what}; documents: "
            f"{[(p, d['status'], d.get('reason')) for p, d in docs.items()]}"
        )
        raise AssertionError  # unreachable

    # -- looking inside -------------------------------------------------------------------------
    def sqs_queue(self, logical: str, **kwargs: Any):  # -> SqsQueue
        from datatorag.adapters.aws.session import AwsConnection
        from datatorag.adapters.aws.sqs_queue import SqsQueue

        conn = AwsConnection(
            endpoint_url=self.aws_endpoint, access_key_id="testing", secret_access_key="testing"
        )
        return SqsQueue(
            self.queues[logical],
            clients=conn,
            visibility_timeout_s=self.visibility_timeout_s,
            max_receives=self.max_receives,
            **kwargs,
        )

    def registry(self):  # -> DynamoDbRegistry
        from datatorag.adapters.aws.dynamodb_registry import DynamoDbRegistry
        from datatorag.adapters.aws.session import AwsConnection

        return DynamoDbRegistry(
            self.table,
            clients=AwsConnection(
                endpoint_url=self.aws_endpoint, access_key_id="testing", secret_access_key="testing"
            ),
        )

    def alias(self) -> str:
        from datatorag.adapters.opensearch.mapping import alias_name
        from datatorag.embedding.model_dir import resolve_model

        return alias_name(self.index_prefix, resolve_model("minilm").model_id)


def run_async(make: Callable[[], Any], use: Callable[[Any], Any]) -> Any:
    """``use(adapter)`` in a fresh event loop, closing the adapter afterwards."""

    async def go() -> Any:
        adapter = make()
        try:
            return await use(adapter)
        finally:
            await adapter.close()

    return asyncio.run(go())


def dlq_messages(stack: ProdStack, logical: str, want: int = 1, timeout: float = 60) -> list:
    """Messages in the DLQ of ``logical`` (a peek: they stay), waiting for ``want`` of them."""
    deadline = time.monotonic() + timeout
    seen: dict[str, Any] = {}
    while time.monotonic() < deadline:
        for m in run_async(lambda: stack.sqs_queue(logical), lambda q: q.dlq_messages(10)):
            seen[m.id] = m
        if len(seen) >= want:
            break
        time.sleep(0.5)
    return list(seen.values())


def chunk_docs(opensearch_url: str, alias: str, doc_id: str) -> list[dict]:
    """Every stored chunk of ``doc_id`` (``_id`` and fields), straight from OpenSearch."""
    base = opensearch_url.rstrip("/")
    _DIRECT.post(f"{base}/{alias}/_refresh").raise_for_status()
    resp = _DIRECT.post(
        f"{base}/{alias}/_search",
        json={
            "size": 10_000,
            "query": {"term": {"doc_id": doc_id}},
            "_source": ["doc_id", "version", "chunk_index", "tenant"],
        },
    )
    resp.raise_for_status()
    return [{"_id": h["_id"], **h["_source"]} for h in resp.json()["hits"]["hits"]]


def assert_indexed_once(opensearch_url: str, alias: str, doc: dict) -> list[dict]:
    """The index holds exactly ``chunk_count`` chunks of the document's current version: one per
    chunk index, unique ids, nothing of any other version."""
    chunks = chunk_docs(opensearch_url, alias, doc["doc_id"])
    n = doc["chunk_count"]
    assert n and n >= 1, doc
    ids = [c["_id"] for c in chunks]
    assert len(ids) == len(set(ids)) == n, (doc["path"], len(ids), len(set(ids)), n)
    assert {c["version"] for c in chunks} == {doc["version"]}, (doc["path"], chunks[:3])
    assert sorted(c["chunk_index"] for c in chunks) == list(range(n)), doc["path"]
    return chunks


def delete_indices(opensearch_url: str, prefix: str) -> None:
    try:
        _DIRECT.delete(f"{opensearch_url.rstrip('/')}/{prefix}-*", timeout=30)
        _DIRECT.delete(f"{opensearch_url.rstrip('/')}/_index_template/{prefix}-*", timeout=30)
    except httpx.HTTPError:
        pass


# -- an OpenSearch node a test owns ---------------------------------------------------------------
class OpenSearchNode:
    """A dedicated single node (``scripts/opensearch.sh``): its own port and data dir, so a test
    can stop and start it without disturbing the session's shared node."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def _script(self, action: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "OPENSEARCH_PORT": str(self.port)}
        return subprocess.run(
            ["bash", str(SCRIPT), action, str(self.run_dir)],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(self) -> float:
        started = time.monotonic()
        done = self._script("start")
        assert done.returncode == 0, f"opensearch.sh start failed:\n{done.stderr[-3000:]}"
        assert done.stdout.strip().splitlines()[-1] == self.url, done.stdout
        return time.monotonic() - started

    def stop(self) -> None:
        done = self._script("stop", timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]

    def healthy(self) -> bool:
        try:
            return _DIRECT.get(f"{self.url}/_cluster/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False


# -- a proxy that catches the indexer mid-message --------------------------------------------------
_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
    "proxy-authenticate",
    "proxy-authorization",
    "host",
    "content-length",
}


class HoldingProxy:
    """Forwards every request to ``upstream``; while ``hold`` is set, a ``_bulk`` request is
    forwarded (its writes land) but its response is held back until ``release`` - the client is
    left waiting inside ``upsert``, with its queue message received and not yet acknowledged."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.hold = threading.Event()
        self.bulk_forwarded = threading.Event()
        self.release = threading.Event()
        self.bulk_bodies: list[bytes] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the client expects

            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=60)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    status, reason, rheaders = resp.status, resp.reason, resp.getheaders()
                finally:
                    conn.close()
                if "/_bulk" in self.path and proxy.hold.is_set():
                    proxy.bulk_bodies.append(body or b"")
                    proxy.bulk_forwarded.set()
                    proxy.release.wait(300)
                self.send_response(status, reason)
                for k, v in rheaders:
                    if k.lower() not in _HOP:
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
