"""End to end on the production path: connector, parser, embedder, indexer and query gateway as
five separate processes over SQS + S3 + DynamoDB (a real moto server) and a real OpenSearch.

Covered: the whole pipeline (good and corrupt documents, search with citations, readiness of every
service, on-demand sync through the gateway), redelivery after a SIGKILL mid-message, poison and
repeatedly failing messages reaching the DLQ, an OpenSearch outage during ingestion, and services
refusing to start against missing dependencies.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import free_port
from tests.e2e.prod_stack import (
    HoldingProxy,
    OpenSearchNode,
    ProdStack,
    assert_indexed_once,
    chunk_docs,
    delete_indices,
    dlq_messages,
    run_async,
)
from tests.fixtures import documents as docs

pytestmark = [pytest.mark.slow]

GOOD = {
    "benefits.pdf": lambda: docs.text_pdf(pages=3, table_page=2, title="Benefits Guide"),
    "parental-leave.md": lambda: docs.markdown_document(title="Parental Leave"),
    "expenses.html": lambda: docs.html_document(title="Expense Policy"),
}
CORRUPT = "corrupt.pdf"
VT_S = 10  # queue visibility timeout: how long a message held by a dead worker stays hidden
MAX_RECEIVES = 5  # the product's default


def _final(d: dict) -> bool:
    return d["status"] in ("INDEXED", "FAILED", "DELETED")


@pytest.fixture(scope="module")
def stack(moto_server, opensearch_server, tmp_path_factory) -> Iterator[ProdStack]:
    """One production stack shared by this module's tests (starting five services is the slow
    part). A test that swaps a service for a variant of its own restores it when done."""
    root = tmp_path_factory.mktemp("prod-stack")
    s = ProdStack(
        root,
        aws_endpoint=moto_server.endpoint_url,
        opensearch_url=opensearch_server.url,
        sources=["docs", "redelivery", "outage"],
        visibility_timeout_s=VT_S,
        max_receives=MAX_RECEIVES,
    )
    try:
        started = time.monotonic()
        s.init_output = s.init()
        s.start()
        s.startup_s = time.monotonic() - started
        yield s
    finally:
        s.stop()
        delete_indices(s.opensearch_url, s.index_prefix)


def _policy(n: int, *, revision: int = 1, paragraphs: int = 10) -> bytes:
    """A Markdown policy of a few chunks, distinct per ``n`` and ``revision``."""
    body = "\n\n".join(docs.paragraphs(1000 * revision + n, paragraphs))
    return f"# Policy {n} (revision {revision})\n\n{body}\n".encode()


def _write(folder: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


@pytest.mark.timeout(600)
def test_whole_pipeline_on_real_servers(stack: ProdStack) -> None:
    print(f"stack up in {stack.startup_s:.1f}s")
    # `datatorag init` made every queue with its DLQ, the bucket, the table and the index
    made = stack.init_output
    for name in stack.queues.values():
        assert f"created   sqs queue {name}\n" in made and f"sqs queue {name}-dlq" in made, made
    assert f"s3 bucket {stack.bucket}" in made and f"dynamodb table {stack.table}" in made, made
    assert "ready     vector index for all-minilm-l6-v2 (384-d)" in made, made
    # every service reports each dependency by name, all ready
    expect = {
        "connector": {f"queue:{stack.queues['parse']}", "registry", "blobstore"},
        "parser": {f"queue:{stack.queues[q]}" for q in ("parse", "embed", "index")}
        | {"registry", "blobstore"},
        "embedder": {f"queue:{stack.queues[q]}" for q in ("embed", "index")}
        | {"registry", "blobstore", "embedder"},
        "indexer": {
            f"queue:{stack.queues['index']}",
            "registry",
            "blobstore",
            "embedder",
            "vector_index",
        },
        "query-gateway": {"registry", "blobstore", "embedder", "vector_index"},
    }
    for name, deps in expect.items():
        resp = stack.services[name].readyz()
        body = resp.json()
        assert resp.status_code == 200 and body["ready"], (name, body)
        assert deps <= set(body["checks"]), (name, sorted(body["checks"]))
        assert all(v == "ok" for v in body["checks"].values()), (name, body)

    # documents land in the folder; nothing happens until a sync is asked for through the gateway
    folder = stack.folders["docs"]
    _write(folder, {rel: make() for rel, make in GOOD.items()})
    _write(folder, {CORRUPT: docs.corrupt_pdf()})
    started = time.monotonic()
    resp = stack.sync("docs")
    assert resp.status_code == 202, resp.text
    detail = resp.json()["detail"]
    assert detail["source"] == "docs" and detail["accepted"] is True and detail["tenant"] == "acme"
    unknown = stack.sync("no-such-source")
    assert unknown.status_code == 404, unknown.text

    expected = len(GOOD) + 1
    got = stack.wait_docs(
        "docs",
        lambda ds: len(ds) == expected and all(map(_final, ds.values())),
        240,
        "every document final",
    )
    print(f"{expected} documents final in {time.monotonic() - started:.1f}s")
    for rel in GOOD:
        assert got[rel]["status"] == "INDEXED", got[rel]
        assert_indexed_once(stack.opensearch_url, stack.alias(), got[rel])
    bad = got[CORRUPT]
    assert bad["status"] == "FAILED" and bad["error_code"] == "pdf_corrupt", bad
    assert bad["reason"] and "pdf" in bad["reason"].lower(), bad

    # the chunk holding a sentence of page 2, cited with its document and page
    marker = docs.page_marker(2)
    hits = stack.search(marker, k=3)["hits"]
    holding = [h for h in hits if marker in " ".join(h["text"].split())]
    assert holding, [h["text"][:80] for h in hits]
    cite = holding[0]["citation"]
    assert cite["path"] == "benefits.pdf" and cite["title"] == "Benefits Guide", cite
    assert cite["source"] == "docs" and cite["doc_id"] == got["benefits.pdf"]["doc_id"]
    assert cite["page_start"] <= 2 <= cite["page_end"], cite
    md = stack.search("parental leave eligibility", k=5)["hits"]
    assert "parental-leave.md" in {h["citation"]["path"] for h in md}


@pytest.mark.timeout(600)
def test_indexer_killed_mid_message_redelivers_and_indexes_once(stack: ProdStack) -> None:
    """SIGKILL while the indexer holds a message whose chunks are already written: the message
    comes back after the visibility timeout, and the document ends up indexed exactly once."""
    folder = stack.folders["redelivery"]
    stack.services["indexer"].stop()
    try:
        with HoldingProxy(stack.opensearch_url) as proxy:
            held = stack.replace(
                "indexer",
                stack.service(
                    "indexer", log_suffix="-held", DATATORAG_OPENSEARCH_URL=proxy.url
                ).start(),
            )
            held.wait_healthy()
            proxy.hold.set()
            _write(folder, {"handbook.pdf": docs.text_pdf(pages=4, seed=31, title="Handbook")})
            assert stack.sync("redelivery").status_code == 202
            if not proxy.bulk_forwarded.wait(240):
                stack.fail("the indexer never sent its bulk request")
            # mid-message: the chunks are in OpenSearch, the registry has not moved, no ack yet
            doc = stack.by_path("redelivery")["handbook.pdf"]
            assert doc["status"] == "EMBEDDED", doc
            written = chunk_docs(stack.opensearch_url, stack.alias(), doc["doc_id"])
            assert written, "the held bulk request wrote nothing"

            # a healthy indexer waits on the queue; the message is invisible while held
            fresh = stack.extra(stack.service("indexer", log_suffix="-fresh").start())
            fresh.wait_healthy()
            held.kill()
            killed_at = time.monotonic()
            stack.replace("indexer", fresh)
            got = stack.wait_docs(
                "redelivery",
                lambda ds: ds.get("handbook.pdf", {}).get("status") == "INDEXED",
                120,
                "the redelivered message indexed",
            )
            waited = time.monotonic() - killed_at
    finally:
        stack.restore("indexer")
    print(f"indexed {waited:.1f}s after the SIGKILL (visibility timeout {VT_S}s)")
    # the heartbeat extends the timeout every VT/3 s: hidden for at least 2/3 VT after the kill
    assert waited >= VT_S * 2 / 3 - 0.5, waited
    doc = got["handbook.pdf"]
    chunks = assert_indexed_once(stack.opensearch_url, stack.alias(), doc)
    assert {c["_id"] for c in chunks} >= {c["_id"] for c in written}
    assert len(written) == doc["chunk_count"] >= 2
    assert "indexed" in fresh.log_text()
    # one version in the registry, and nothing dead-lettered
    versions = run_async(stack.registry, lambda r: r.versions("acme", doc["doc_id"]))
    assert [v.version for v in versions] == [doc["version"]]
    assert not [m for m in dlq_messages(stack, "index", want=0) if doc["doc_id"] in m.body]


@pytest.mark.timeout(300)
def test_poison_and_repeatedly_failing_messages_reach_the_dlq(stack: ProdStack) -> None:
    from datatorag.domain.contracts import ChunksEmbedded
    from datatorag.domain.keys import records_key
    from datatorag.domain.models import DocumentRecord, DocumentStatus

    # 1. bodies that are no message at all: dead-lettered at once with the reason
    garbage = ["{not json", '{"type": "document.fetched", "tenant": "acme"}']
    for body in garbage:
        run_async(lambda: stack.sqs_queue("parse"), lambda q, b=body: q.send(b))
    dead = dlq_messages(stack, "parse", want=len(garbage))
    assert sorted(m.body for m in dead) == sorted(garbage), [m.body for m in dead]
    for m in dead:
        assert m.attributes["reason"].startswith("malformed message"), m.attributes
        assert m.attributes["source_queue"] == stack.queues["parse"]

    # 2. a well-formed message whose handling keeps failing (its records blob does not exist)
    version, doc_id = "feedfacefeedface", f"poison-{stack.tag}"
    record = DocumentRecord(
        tenant="acme",
        doc_id=doc_id,
        version=version,
        seq=time.time_ns(),
        source="poison",
        path="ghost.md",
        content_hash=version * 4,
    )

    async def seed(registry) -> None:
        await registry.put_version(record)
        await registry.advance("acme", doc_id, version, DocumentStatus.EMBEDDED, chunk_count=1)

    run_async(stack.registry, seed)
    missing = records_key("acme", doc_id, version, "all-minilm-l6-v2")
    body = ChunksEmbedded(
        tenant="acme",
        doc_id=doc_id,
        version=version,
        records_key=missing,
        chunk_count=1,
        model_id="all-minilm-l6-v2",
        dim=384,
    ).to_json()
    sent_at = time.monotonic()
    run_async(lambda: stack.sqs_queue("index"), lambda q: q.send(body))
    got = stack.wait_docs(
        "poison",
        lambda ds: ds.get("ghost.md", {}).get("status") == "FAILED",
        180,
        "the failing message given up on",
    )
    took = time.monotonic() - sent_at
    print(f"gave up after {took:.1f}s")
    doc = got["ghost.md"]
    assert doc["error_code"] == "gave_up", doc
    assert f"gave up after {MAX_RECEIVES} attempts" in doc["reason"], doc
    assert missing in doc["reason"], doc
    # retried with backoff (1+2+4+8 s between the five receives) before giving up
    assert took >= sum(2**n for n in range(MAX_RECEIVES - 1)) - 1, took
    dead = [m for m in dlq_messages(stack, "index") if m.body == body]
    assert dead and "NotFound" in dead[0].attributes["reason"], [m.attributes for m in dead]


@pytest.mark.timeout(900)
def test_opensearch_outage_during_ingestion_loses_nothing(stack: ProdStack, tmp_path: Path) -> None:
    """The indexer writes to a node of its own, which is stopped for 30 s while documents keep
    arriving; once it is back every document is indexed, once, at its newest version."""
    node = OpenSearchNode(tmp_path / "opensearch")
    boot_s = node.start()
    alias = stack.alias()
    folder = stack.folders["outage"]
    try:
        stack.services["indexer"].stop()
        indexer = stack.replace(
            "indexer",
            stack.service(
                "indexer", log_suffix="-outage", DATATORAG_OPENSEARCH_URL=node.url
            ).start(),
        )
        indexer.wait_healthy()
        _write(folder, {f"policy-{n}.md": _policy(n) for n in (0, 1)})
        assert stack.sync("outage").status_code == 202
        before = stack.wait_docs(
            "outage",
            lambda ds: len(ds) == 2 and all(d["status"] == "INDEXED" for d in ds.values()),
            180,
            "the first two documents indexed",
        )

        node.stop()
        down_at = time.monotonic()
        # ingestion goes on: three new documents and a new version of an indexed one
        _write(folder, {f"policy-{n}.md": _policy(n) for n in (2, 3, 4)})
        _write(folder, {"policy-0.md": _policy(0, revision=2)})
        assert stack.sync("outage").status_code == 202
        waiting = stack.wait_docs(
            "outage",
            lambda ds: len(ds) == 5 and sum(d["status"] == "EMBEDDED" for d in ds.values()) == 4,
            120,
            "the new versions waiting at the indexer",
        )
        assert waiting["policy-0.md"]["version"] != before["policy-0.md"]["version"]
        ready = indexer.readyz()
        assert ready.status_code == 503 and ready.json()["checks"]["vector_index"] != "ok"
        time.sleep(max(0.0, 30 - (time.monotonic() - down_at)))
        restart_s = node.start()
        down_s = time.monotonic() - down_at

        got = stack.wait_docs(
            "outage",
            lambda ds: len(ds) == 5 and all(d["status"] == "INDEXED" for d in ds.values()),
            300,
            "every document indexed",
        )
        recovered_s = time.monotonic() - down_at - down_s
        print(
            f"node boot {boot_s:.1f}s, down {down_s:.1f}s (restart {restart_s:.1f}s), "
            f"all indexed {recovered_s:.1f}s after it was back"
        )
        assert got["policy-0.md"]["version"] == waiting["policy-0.md"]["version"]
        for d in got.values():
            assert_indexed_once(node.url, alias, d)  # the old version of policy-0 is gone too
        assert not [
            m
            for m in dlq_messages(stack, "index", want=0)
            if any(d["doc_id"] in m.body for d in got.values())
        ]
        assert "transient error; will retry" in indexer.log_text()
    finally:
        node.stop()
        stack.restore("indexer")


@pytest.mark.timeout(400)
def test_services_refuse_to_start_without_their_dependencies(stack: ProdStack) -> None:
    from datatorag.adapters.opensearch.index import OpenSearchIndex
    from datatorag.config import OpenSearchSettings

    # an index of the right name but another model's dimension
    wrong = f"{stack.index_prefix}-wrongdim"
    run_async(
        lambda: OpenSearchIndex(
            OpenSearchSettings(url=stack.opensearch_url, index_prefix=wrong),
            model_id="all-minilm-l6-v2",
            dim=768,
        ),
        lambda index: index.ensure(),
    )
    missing = f"e2e-{stack.tag}-missing"
    closed = f"http://127.0.0.1:{free_port()}"
    cases = [  # service, environment, what its message must name
        ("parser", {"DATATORAG_QUEUE_PARSE": missing}, [f"sqs queue {missing}", "does not exist"]),
        (
            "connector",
            {"DATATORAG_AWS_BUCKET": missing},
            [f"s3 bucket {missing}", "does not exist"],
        ),
        (
            "query-gateway",
            {"DATATORAG_AWS_REGISTRY_TABLE": missing},
            [f"dynamodb table {missing}", "does not exist"],
        ),
        ("indexer", {"DATATORAG_OPENSEARCH_INDEX_PREFIX": wrong}, ["768-d", "384-d"]),
        ("indexer", {"DATATORAG_OPENSEARCH_URL": closed}, ["opensearch", closed.split("//")[1]]),
        # a token the embedder does not know: refused at once, not waited out as a slow start
        (
            "indexer",
            {"DATATORAG_SERVICE_TOKEN": "not-the-embedders-token-0123"},
            ["DATATORAG_SERVICE_TOKEN (401)", "refused"],
        ),
    ]
    started = time.monotonic()
    procs = []
    for i, (name, env, _) in enumerate(cases):
        port = {"DATATORAG_GATEWAY_PORT": str(free_port())}  # never the stack's own ports
        procs.append(
            stack.extra(
                stack.service(
                    name,
                    log_suffix=f"-missing-{i}",
                    **env,
                    **port,
                    DATATORAG_HEALTH_PORT=str(free_port()),
                ).start()
            )
        )
    try:
        for proc, (name, _, needles) in zip(procs, cases, strict=True):
            rc = proc.proc.wait(240)
            out = proc.log_text()
            assert rc != 0, f"{name} started without its dependency:\n{out[-3000:]}"
            for needle in needles:
                assert needle in out, f"{name}: {needle!r} not in its message:\n{out[-3000:]}"
            last = out.strip().splitlines()[-1]  # the reason, said last and plainly
            assert last.startswith(f"{name}: cannot start") and needles[0] in last, out[-3000:]
    finally:
        for proc in procs:
            proc.stop(10)
        delete_indices(stack.opensearch_url, wrong)
    print(f"{len(cases)} refusals in {time.monotonic() - started:.1f}s")
