"""The rendered chart, run: ``helm template`` with ``ci/cpu-values.yaml`` (plus this machine's
addresses and unique names), then every hook Job and Deployment started as a process with exactly
the rendered environment and files (``tests/deploy/kubelet.py``) against a moto server and the real
OpenSearch. A source declared in the values is synced through the gateway's Service port, a
document is uploaded through it, and both are found over REST and gRPC.

A variable the code does not read, a reference to a missing ConfigMap/Secret/key/claim, a volume
the pods cannot have, or a process that exits fails the test."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import time
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest
import yaml

from datatorag.config import sample_corpus
from datatorag.embedding.model_dir import resolve_model
from datatorag.gateway.grpc_gen import gateway_pb2 as pb
from datatorag.gateway.grpc_gen import gateway_pb2_grpc as pb_grpc
from tests.deploy._paths import CHART
from tests.deploy._settings_env import unknown_datatorag_vars
from tests.deploy.conftest import DeployTools
from tests.deploy.kubelet import Cluster, by_kind
from tests.e2e.conftest import free_port
from tests.e2e.prod_stack import delete_indices

pytestmark = pytest.mark.timeout(900)

RELEASE = "rel"
FULL = "rel-datatorag"
API_KEY = "chart-key"
TENANT = "acme"  # the tenant of ci/cpu-values.yaml's sources
READY_TIMEOUT_S = 300  # five processes importing torch on a loaded 2-core box
INDEX_TIMEOUT_S = 240
_HTTP = httpx.Client(timeout=60, trust_env=False)


def _digest(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def _secret(name: str, data: dict[str, str]) -> dict[str, Any]:
    import base64

    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


@pytest.fixture(scope="module")
def names() -> dict[str, str]:
    tag = uuid.uuid4().hex[:8]
    return {
        "tag": tag,
        "bucket": f"chart-{tag}-docs",
        "landing": f"chart-{tag}-landing",
        "table": f"chart-{tag}-registry",
        "prefix": f"dtr-chart-{tag}",
        **{q: f"chart-{tag}-{q}" for q in ("parse", "embed", "index")},
    }


@pytest.fixture(scope="module")
def rendered(
    deploy_tools: DeployTools,
    names: dict[str, str],
    opensearch_server: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> list[dict[str, Any]]:
    ports = {s: free_port() for s in ("connector", "parser", "embedder", "indexer", "gateway")}
    base = yaml.safe_load((CHART / "ci" / "cpu-values.yaml").read_text())
    source = dict(base["sources"]["inline"]["tenants"][TENANT]["sources"][0])
    source["bucket"] = names["landing"]
    overlay = {
        "config": {
            "aws": {
                "region": "us-east-1",
                "bucket": names["bucket"],
                "registryTable": names["table"],
            },
            "queues": {
                "parse": names["parse"],
                "embed": names["embed"],
                "index": names["index"],
                "visibilityTimeoutS": 30,
                "waitTimeS": 2,
            },
            "opensearch": {"url": opensearch_server.url, "indexPrefix": names["prefix"]},
            "uploads": {"bucket": names["landing"]},
            # the model from a claim, as on EKS (the bundled MiniLM copied into it)
            "embedding": {"model": "/models/all-MiniLM-L6-v2"},
        },
        "model": {"volume": {"type": "persistentVolumeClaim", "claimName": "datatorag-models"}},
        "sources": {"inline": {"tenants": {TENANT: {"sources": [source]}}}},
        # every pod has its own IP in a cluster; here they share one, so one port each
        "services": {
            "connector": {"port": ports["connector"]},
            "parser": {"port": ports["parser"]},
            "embedder": {"port": ports["embedder"]},
            "indexer": {"port": ports["indexer"]},
            "query-gateway": {"port": ports["gateway"], "grpc": {"port": free_port()}},
        },
    }
    path = tmp_path_factory.mktemp("chart-values") / "local.yaml"
    path.write_text(json.dumps(overlay))
    text = deploy_tools.template(CHART / "ci" / "cpu-values.yaml", path).stdout
    return [d for d in yaml.safe_load_all(text) if d]


def test_every_variable_is_one_the_code_reads(rendered: list[dict[str, Any]]) -> None:
    cm = by_kind(rendered, "ConfigMap")
    pods = [d["spec"]["template"]["spec"] for d in by_kind(rendered, "Deployment").values()]
    pods += [j["spec"]["template"]["spec"] for j in by_kind(rendered, "Job").values()]
    assert len(pods) == 6
    for pod in pods:
        (c,) = pod["containers"]
        names = {e["name"] for e in c.get("env") or []}
        for src in c.get("envFrom") or []:
            names |= set(cm[src["configMapRef"]["name"]]["data"])
        assert unknown_datatorag_vars(dict.fromkeys(names)) == [], c["name"]


@pytest.fixture(scope="module")
def cluster(
    rendered: list[dict[str, Any]],
    names: dict[str, str],
    moto_server: Any,
    opensearch_server: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("kubelet")
    claim = root / "claims" / "datatorag-models"
    shutil.copytree(resolve_model("minilm").path, claim / "all-MiniLM-L6-v2")

    async def landing_bucket() -> None:  # the storage stack's landing bucket
        clients = moto_server.clients()
        try:
            s3 = await clients.client("s3")
            await s3.create_bucket(Bucket=names["landing"])
        finally:
            await clients.close()

    asyncio.run(landing_bucket())
    k = Cluster(
        rendered,
        root,
        # digests only: a production gateway refuses plaintext keys in its environment
        existing=[
            _secret(
                "datatorag-api-keys",
                {"api-keys": f"{_digest(API_KEY)}={TENANT}", "admin-api-keys": _digest(API_KEY)},
            )
        ],
        claims={"datatorag-models": claim},
        platform_env={
            "AWS_ENDPOINT_URL": moto_server.endpoint_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        },
    )
    try:
        k.run_hooks()
        k.start_deployments()
        k.wait_ready(READY_TIMEOUT_S)
        yield k
    finally:
        k.stop()
        delete_indices(opensearch_server.url, names["prefix"])


def _service_port(docs: list[dict[str, Any]], service: str, port: str) -> int:
    svc = by_kind(docs, "Service")[f"{FULL}-{service}"]
    return next(int(p["port"]) for p in svc["spec"]["ports"] if p["name"] == port)


def _wait_indexed(gateway: str, paths: set[str], k: Cluster) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + INDEX_TIMEOUT_S
    docs: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        resp = _HTTP.get(
            f"{gateway}/v1/documents", params={"limit": 100}, headers={"X-API-Key": API_KEY}
        )
        if resp.status_code == 200:
            docs = {d["path"]: d for d in resp.json()["documents"]}
            if paths <= {p for p, d in docs.items() if d["status"] == "INDEXED"}:
                return docs
        time.sleep(1)
    raise AssertionError(
        f"not indexed in {INDEX_TIMEOUT_S}s: {[(p, d['status']) for p, d in docs.items()]}\n"
        + k.tails()
    )


def test_a_declared_source_and_an_upload_are_searchable_over_rest_and_grpc(
    cluster: Cluster, rendered: list[dict[str, Any]], names: dict[str, str], moto_server: Any
) -> None:
    gateway = f"http://127.0.0.1:{_service_port(rendered, 'query-gateway', 'http')}"
    auth = {"Authorization": f"Bearer {API_KEY}"}
    samples = sample_corpus()

    # a document in the values' S3 source, then a sync through the gateway (-> the connector)
    async def put() -> None:
        clients = moto_server.clients()
        try:
            s3 = await clients.client("s3")
            body = (samples / "onboarding-checklist.md").read_bytes()
            await s3.put_object(
                Bucket=names["landing"], Key="handbooks/onboarding-checklist.md", Body=body
            )
        finally:
            await clients.close()

    asyncio.run(put())
    resp = _HTTP.post(f"{gateway}/v1/sources/handbooks/sync", headers=auth)
    assert resp.status_code == 202, resp.text

    # an upload: into the landing bucket, under the tenant's prefix, synced at once
    upload = samples / "401k-retirement-plan.txt"
    resp = _HTTP.post(
        f"{gateway}/v1/documents",
        headers=auth,
        files={"file": (upload.name, upload.read_bytes(), "text/plain")},
    )
    assert resp.status_code in (200, 201, 202), resp.text
    assert resp.json()["detail"]["key"] == f"uploads/{TENANT}/{upload.name}", resp.json()

    docs = _wait_indexed(gateway, {"onboarding-checklist.md", upload.name}, cluster)
    assert {docs["onboarding-checklist.md"]["source"], docs[upload.name]["source"]} == {
        "handbooks",
        "uploads",
    }

    resp = _HTTP.post(
        f"{gateway}/v1/search", headers=auth, json={"query": "401(k) employer match", "k": 3}
    )
    assert resp.status_code == 200, resp.text
    hits = resp.json()["hits"]
    assert hits and hits[0]["citation"]["doc_id"] == docs[upload.name]["doc_id"], hits[:1]

    async def grpc_search() -> Any:
        port = _service_port(rendered, "query-gateway", "grpc")
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.QueryGatewayStub(channel)
            return await stub.Search(
                pb.SearchRequest(query="first day onboarding checklist", k=3),
                metadata=(("authorization", f"Bearer {API_KEY}"),),
                timeout=60,
            )

    reply = asyncio.run(grpc_search())
    assert reply.hits, reply
    assert reply.hits[0].citation.doc_id == docs["onboarding-checklist.md"]["doc_id"]

    # the unauthenticated internal endpoints are not the gateway's: no key, no answer
    assert _HTTP.post(f"{gateway}/v1/search", json={"query": "x"}).status_code == 401
    # nothing crash-looped: the init hook ran first, so every service started once
    assert {c.name: c.restarts for c in cluster.containers.values()} == dict.fromkeys(
        cluster.containers, 0
    ), cluster.tails()
