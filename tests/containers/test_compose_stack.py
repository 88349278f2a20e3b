"""docker-compose.yml, run: the same file under podman-compose with CI's host-network override
(deploy/compose/ci-host-network.yml). The stack ingests the sample corpus from its FTP server
through connector, parser, embedder and indexer (SQS, S3 and DynamoDB on moto, OpenSearch), the
gateway answers from it, and a restarted moto comes back with its queues."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from datatorag.config import sample_corpus
from tests.containers._podman import Stack, ensure_images, podman

PROJECT = "datatorag-ci"
GATEWAY = "http://127.0.0.1:19080"
MOTO = "http://127.0.0.1:15000"
AUTH = {"Authorization": "Bearer dev-key"}
INFRA = ("opensearch", "aws", "ftp")
WORKERS = ("parser", "indexer", "connector", "query-gateway")
LONG_RUNNING = (*INFRA, "embedder", *WORKERS)
# every port the stack listens on (the override's), and the sample FTP server's passive range
PORTS = {19200, 19300, 15000, 2121, 19080, 19081, 19101, 19102, 19103}
INGEST_TIMEOUT_S = 900  # 13 documents through four services on 2 shared cores


def expected_documents() -> set[str]:
    """The sample corpus as the FTP source sees it (deploy/docker/sources.yaml excludes _src/)."""
    return {p.name for p in sample_corpus().iterdir() if p.is_file() and not p.name.startswith("_")}


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    ensure_images()
    s = Stack(PROJECT)
    s.compose("down", "-v", "-t", "10")  # leftovers of an interrupted run
    try:
        # podman-compose creates every container as compose would; the start order of
        # depends_on is enforced here because podman 4.3 cannot wait for "service_healthy"
        # (podman-compose warns and skips those conditions) and its --requires links cannot
        # start a service after a one-shot has exited: infra healthy, init exited 0, embedder
        # healthy, then the rest.
        s.compose("up", "--no-build", "--no-start", "--no-deps")
        s.start(*INFRA)
        for svc in INFRA:
            s.wait_healthy(svc)
        s.start("init")
        assert s.wait_exit("init") == 0, s.logs("init")
        s.start("embedder")
        s.wait_healthy("embedder", timeout_s=420)
        s.start(*WORKERS)
        for svc in WORKERS:
            s.wait_healthy(svc)
        yield s
    finally:
        s.compose("down", "-v", "-t", "30")


def documents(source: str = "sample-ftp") -> list[dict[str, Any]]:
    r = httpx.get(f"{GATEWAY}/v1/documents", params={"source": source}, headers=AUTH, timeout=30)
    r.raise_for_status()
    return list(r.json()["documents"])


def wait_indexed(stack: Stack, since: float = 0.0) -> list[dict[str, Any]]:
    """Every sample document INDEXED (and, with ``since``, registered after that time)."""
    want = expected_documents()
    deadline = time.monotonic() + INGEST_TIMEOUT_S
    docs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        docs = documents()
        failed = [d for d in docs if d["status"] == "FAILED"]
        assert not failed, failed
        indexed = {d["path"].rsplit("/", 1)[-1] for d in docs if d["status"] == "INDEXED"}
        if indexed >= want:
            return docs
        time.sleep(5)
    logs = "\n".join(f"--- {s}\n{stack.logs(s)}" for s in ("connector", "parser", "indexer"))
    pytest.fail(f"not all of {sorted(want)} indexed: {json.dumps(docs)[:3000]}\n{logs}")


def answer(question: str) -> dict[str, Any]:
    r = httpx.post(f"{GATEWAY}/v1/answer", json={"query": question}, headers=AUTH, timeout=120)
    r.raise_for_status()
    return dict(r.json())


def test_every_service_passes_its_image_healthcheck(stack: Stack) -> None:
    for svc in LONG_RUNNING:
        proc = podman("healthcheck", "run", stack.container(svc), check=False, timeout=60)
        assert proc.returncode == 0, f"{svc}: {proc.stdout}{proc.stderr}"
        mode = podman("inspect", "--format", "{{.HostConfig.NetworkMode}}", stack.container(svc))
        assert mode.stdout.strip() == "host", svc


def test_every_port_listens_on_loopback_only(stack: Stack) -> None:
    out = subprocess.run(["ss", "-ltnH"], check=True, capture_output=True, text=True).stdout
    bound: dict[int, set[str]] = {}
    for line in out.splitlines():
        local = line.split()[3]
        addr, _, port = local.rpartition(":")
        if int(port) in PORTS:  # Java listens on IPv4 through an IPv6 socket: [::ffff:127.0.0.1]
            bound.setdefault(int(port), set()).add(addr.strip("[]").removeprefix("::ffff:"))
    assert set(bound) == PORTS, f"not listening: {sorted(PORTS - set(bound))}"
    assert {a for addrs in bound.values() for a in addrs} == {"127.0.0.1"}, bound


def test_ingests_the_sample_corpus_from_ftp_and_answers_with_citations(stack: Stack) -> None:
    docs = wait_indexed(stack)
    assert {d["source"] for d in docs} == {"sample-ftp"}
    assert all(d["chunk_count"] > 0 for d in docs if d["status"] == "INDEXED")
    got = answer("How many PTO days can I carry over into next year?")
    assert not got["abstained"], got
    cited = {c["path"].rsplit("/", 1)[-1] for c in got["citations"]}
    assert "pto-and-leave-policy.pdf" in cited, got
    assert "5 days" in got["answer"] or "five" in got["answer"].lower(), got["answer"]
    # and a question the handbooks do not answer is declined, not made up
    assert answer("What is the airspeed of an unladen swallow?")["abstained"]


def queue_names() -> set[str]:
    import boto3

    sqs = boto3.client(
        "sqs",
        endpoint_url=MOTO,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    return {url.rsplit("/", 1)[-1] for url in sqs.list_queues().get("QueueUrls", [])}


def test_a_restarted_moto_has_its_queues_again_and_ingestion_goes_on(stack: Stack) -> None:
    wait_indexed(stack)
    names = {"datatorag-parse", "datatorag-embed", "datatorag-index"}
    assert queue_names() >= names | {f"{n}-dlq" for n in names}
    podman("restart", "-t", "10", stack.container("aws"), timeout=120)
    stack.wait_healthy("aws")
    assert queue_names() >= names | {f"{n}-dlq" for n in names}
    assert documents() == []  # moto's memory (the registry) is gone with the restart
    # the running services carry on against the new moto: a sync ingests everything again
    r = httpx.post(f"{GATEWAY}/v1/sources/sample-ftp/sync", headers=AUTH, timeout=60)
    assert r.status_code == 202, r.text
    wait_indexed(stack)
    got = answer("How many PTO days can I carry over into next year?")
    assert "pto-and-leave-policy.pdf" in {c["path"].rsplit("/", 1)[-1] for c in got["citations"]}
