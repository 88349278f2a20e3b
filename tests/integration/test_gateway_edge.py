"""The gateway's edge, in process (the ASGI app exactly as served): registry keys, rate limits,
media types, bodies cut off while streaming, the audit line, CORS and security headers, and the
service token of the internal endpoints. Real gateway processes (RSS, two replicas on Redis):
``test_gateway_edge_processes.py``."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
import structlog
from structlog.testing import capture_logs

from datatorag.config import Settings
from datatorag.domain.errors import DependencyError
from datatorag.gateway import GatewayDeps, create_app
from datatorag.gateway.api_keys import create_key
from datatorag.gateway.app import MAX_JSON_BODY_BYTES
from datatorag.testing.memory import MemoryRegistry, MemoryVectorIndex
from datatorag.testing.memory.embedder import HashingEmbedder
from datatorag.testing.records import chunk_record


@pytest.fixture(autouse=True)
def _logging_at_info() -> Any:
    """The audit line is an INFO event: an earlier test may have configured the process's
    logging at WARNING, whose level filter drops INFO before ``capture_logs`` sees it (the audit
    module binds its logger per line, so no logger cached under that configuration remains)."""
    saved = structlog.get_config()
    structlog.reset_defaults()
    yield
    structlog.configure(**saved)


KEY, OTHER = "edge-key-acme", "edge-key-globex"
HEADERS = {"Authorization": f"Bearer {KEY}"}
NO_LIMITS = {"per_s": 1e6, "burst": 1e6, "auth_failures_per_min": 1e6, "auth_failure_burst": 1e6}


async def _stack(**settings: Any) -> tuple[Any, MemoryRegistry]:
    embedder = HashingEmbedder(dim=32)
    index = MemoryVectorIndex(dim=32)
    await index.ensure()
    text = "Parental leave is sixteen weeks at full pay."
    vector = (await embedder.embed_documents([text]))[0]
    await index.upsert([chunk_record("leave", text, vector)])
    registry = MemoryRegistry()
    base: dict[str, Any] = {
        "api_keys": f"{KEY}=acme,{OTHER}=globex",
        "admin_api_keys": KEY,
        "rate_limit": NO_LIMITS,
    }
    app = create_app(
        GatewayDeps(
            settings=Settings(**{**base, **settings}),
            index=index,
            embedder=embedder,
            registry=registry,
        )
    )
    return app, registry


def _client(app: Any, client: tuple[str, int] = ("10.0.0.1", 5000)) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=client)
    return httpx.AsyncClient(transport=transport, base_url="http://gw")


async def _search(c: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    return await c.post("/v1/search", json={"query": "parental leave"}, headers=headers)


# ------------------------------------------------------------------------------ registry keys


async def test_a_registry_key_acts_as_its_principal_until_revoked() -> None:
    app, registry = await _stack(api_key_cache_s=0)
    reader = await create_key(registry, "acme", groups=["hr"], name="hr portal")
    admin = await create_key(registry, "globex", role="admin")
    assert reader.key.startswith(f"dtr_{reader.record.key_id}_")
    stored = await registry.get_api_key(reader.record.key_id)
    assert stored is not None and reader.key not in stored.model_dump_json()  # only a hash
    async with _client(app) as c:
        ok = await _search(c, {"Authorization": f"Bearer {reader.key}"})
        assert ok.status_code == 200 and ok.json()["hits"][0]["citation"]["doc_id"] == "leave"
        # the key decides the tenant: globex's admin key sees none of acme's documents
        other = await _search(c, {"X-API-Key": admin.key})
        assert other.status_code == 200 and other.json()["hits"] == []
        # a reader key may not sync; the admin key may (501: no sync hook on this gateway)
        assert (
            await c.post("/v1/sources/hr/sync", headers={"X-API-Key": reader.key})
        ).status_code == 403
        assert (
            await c.post("/v1/sources/hr/sync", headers={"X-API-Key": admin.key})
        ).status_code == 501
        wrong_secret = reader.key[:-4] + ("AAAA" if not reader.key.endswith("AAAA") else "BBBB")
        for bad, reason in [
            (wrong_secret, "invalid API key"),
            ("dtr_" + "0" * 16 + "_" + "a" * 43, "invalid API key"),
            ("dtr_short", "malformed API key"),
        ]:
            resp = await _search(c, {"Authorization": f"Bearer {bad}"})
            assert resp.status_code == 401 and resp.json()["error"]["message"] == reason
        assert await registry.revoke_api_key(reader.record.key_id, by="test")
        revoked = await _search(c, {"Authorization": f"Bearer {reader.key}"})
        assert revoked.status_code == 401
        assert revoked.json()["error"]["message"] == "API key revoked"
        assert (await _search(c, {"X-API-Key": admin.key})).status_code == 200


async def test_a_verified_key_is_cached_for_the_configured_time() -> None:
    app, registry = await _stack(api_key_cache_s=0.5)
    made = await create_key(registry, "acme")
    auth = {"Authorization": f"Bearer {made.key}"}
    async with _client(app) as c:
        assert (await _search(c, auth)).status_code == 200
        await registry.revoke_api_key(made.record.key_id)
        assert (await _search(c, auth)).status_code == 200  # still cached
        await asyncio.sleep(0.6)
        assert (await _search(c, auth)).status_code == 401  # the revocation has arrived


# ------------------------------------------------------------------------------ rate limits


async def test_a_burst_over_the_limit_is_429_with_retry_after_and_others_are_unaffected() -> None:
    app, _ = await _stack(rate_limit={**NO_LIMITS, "per_s": 0.5, "burst": 3})
    async with _client(app) as c:
        codes = [(await _search(c, HEADERS)).status_code for _ in range(3)]
        assert codes == [200, 200, 200]
        limited = await _search(c, HEADERS)
        assert limited.status_code == 429
        assert limited.json()["error"]["code"] == "too_many_requests"
        # one token comes back every 2 s: the client is told to wait about that long
        assert 1 <= int(limited.headers["retry-after"]) <= 2
        # another principal has its own bucket
        assert (await _search(c, {"X-API-Key": OTHER})).status_code == 200
        await asyncio.sleep(2.1)
        assert (await _search(c, HEADERS)).status_code == 200


async def test_failed_authentication_blocks_the_address_not_the_key() -> None:
    app, _ = await _stack(
        rate_limit={**NO_LIMITS, "auth_failures_per_min": 6, "auth_failure_burst": 3}
    )
    async with _client(app, ("10.9.9.9", 1)) as attacker, _client(app, ("10.1.1.1", 1)) as user:
        wrong = {"Authorization": "Bearer guess"}
        assert [(await _search(attacker, wrong)).status_code for _ in range(3)] == [401] * 3
        blocked = await _search(attacker, wrong)
        assert blocked.status_code == 429 and 1 <= int(blocked.headers["retry-after"]) <= 10
        # once blocked, even the right key is refused from there: a guess cannot be confirmed
        assert (await _search(attacker, HEADERS)).status_code == 429
        # the same key from another address works, and that address is not blocked
        assert (await _search(user, HEADERS)).status_code == 200
        assert (await _search(user, wrong)).status_code == 401


# ------------------------------------------------------------------------------ bodies and types


async def test_wrong_media_types_are_415_and_json_charset_is_fine() -> None:
    app, _ = await _stack()
    async with _client(app) as c:
        body = b'{"query": "leave"}'
        for ctype in ("text/plain", "application/x-www-form-urlencoded", None):
            headers = {**HEADERS, **({"content-type": ctype} if ctype else {})}
            resp = await c.post("/v1/search", content=body, headers=headers)
            assert resp.status_code == 415, (ctype, resp.text)
            assert resp.json()["error"]["code"] == "unsupported_media_type"
        ok = await c.post(
            "/v1/search",
            content=body,
            headers={**HEADERS, "content-type": "application/json; charset=utf-8"},
        )
        assert ok.status_code == 200
        upload = await c.post("/v1/documents", json={"file": "x"}, headers=HEADERS)
        assert (
            upload.status_code == 415 and "multipart/form-data" in upload.json()["error"]["message"]
        )


async def test_strict_numbers_and_bounds() -> None:
    app, _ = await _stack()
    async with _client(app) as c:
        for body in ({"query": "x", "k": True}, {"query": "x", "k": "3"}, {"query": "x", "k": 0}):
            resp = await c.post("/v1/search", json=body, headers=HEADERS)
            assert resp.status_code == 422 and resp.json()["error"]["details"][0]["field"] == "k"
        answer = await c.post("/v1/answer", json={"query": "x", "stream": 1}, headers=HEADERS)
        assert answer.status_code == 422  # 1 is not true
        long = await c.post("/v1/search", json={"query": "x" * 2001}, headers=HEADERS)
        assert long.status_code == 413 and long.json()["error"]["code"] == "query_too_long"


class _Body:
    """An ASGI ``receive`` that serves an endless (or slow) body and counts what it handed out."""

    def __init__(self, chunk: bytes, *, delay_s: float = 0.0, head: bytes = b"") -> None:
        self.chunk, self.delay_s, self.head = chunk, delay_s, head
        self.sent = 0
        self.calls = 0

    async def __call__(self) -> dict[str, Any]:
        self.calls += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        data = self.chunk if self.calls > 1 or not self.head else self.head
        self.sent += len(data)
        return {"type": "http.request", "body": data, "more_body": True}


async def _asgi(
    app: Any, path: str, headers: list[tuple[bytes, bytes]], receive: Any
) -> list[dict]:
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("10.0.0.7", 1234),
        "server": ("gw", 80),
    }
    await asyncio.wait_for(app(scope, receive, send), 30)
    return sent


def _status(sent: list[dict]) -> int:
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert len(starts) == 1, sent
    return starts[0]["status"]


@pytest.mark.parametrize(
    ("path", "ctype"),
    [("/v1/search", b"application/json"), ("/v1/documents", b"multipart/form-data; boundary=x")],
)
async def test_no_body_byte_is_read_before_authentication(path: str, ctype: bytes) -> None:
    app, _ = await _stack()
    body = _Body(b"x" * 65536)
    headers = [(b"content-type", ctype), (b"transfer-encoding", b"chunked")]
    sent = await _asgi(app, path, headers, body)
    assert _status(sent) == 401
    assert body.calls == 0  # the 300 MB chunked body of the report is never touched


@pytest.mark.parametrize(
    ("path", "ctype", "limit"),
    [
        ("/v1/search", b"application/json", MAX_JSON_BODY_BYTES),
        ("/v1/documents", b"multipart/form-data; boundary=x", 200_000 + 64 * 1024),
    ],
)
async def test_a_chunked_body_over_the_limit_is_cut_off_while_streaming(path, ctype, limit) -> None:
    app, _ = await _stack(max_document_bytes=200_000)
    # endless, no Content-Length; the upload a well-formed multipart part that never ends
    head = (
        b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\n'
        if path == "/v1/documents"
        else b"{"
    )
    body = _Body(b"a" * 65536, head=head)
    headers = [
        (b"authorization", f"Bearer {KEY}".encode()),
        (b"content-type", ctype),
        (b"transfer-encoding", b"chunked"),
    ]
    sent = await _asgi(app, path, headers, body)
    assert _status(sent) == 413
    # read up to the limit and one chunk past it, never the rest
    assert limit < body.sent <= limit + 65536
    # a declared Content-Length over the limit is refused without reading at all
    declared = _Body(b"{" * 1024)
    sent = await _asgi(
        app, path, [*headers[:2], (b"content-length", str(limit + 1).encode())], declared
    )
    assert _status(sent) == 413 and declared.calls == 0


async def test_a_slow_body_is_cut_off_at_the_body_timeout() -> None:
    app, _ = await _stack(gateway_body_timeout_s=0.5)
    body = _Body(b"{", delay_s=0.2)  # a byte every 0.2 s
    headers = [
        (b"authorization", f"Bearer {KEY}".encode()),
        (b"content-type", b"application/json"),
        (b"transfer-encoding", b"chunked"),
    ]
    sent = await _asgi(app, "/v1/search", headers, body)
    assert _status(sent) == 408
    assert body.sent <= 4


# ------------------------------------------------------------------------------ audit, headers


async def test_one_audit_line_per_request_with_principal_query_hash_and_documents() -> None:
    app, registry = await _stack()
    made = await create_key(registry, "acme", groups=["hr"])
    async with _client(app) as c:
        with capture_logs() as logs:
            await c.post(
                "/v1/search",
                json={"query": "parental leave"},
                headers={"X-API-Key": made.key, "X-Request-ID": "req-1"},
            )
            await c.get("/v1/documents/leave", headers={"X-API-Key": "nope"})
            await c.get("/healthz")
    audits = [e for e in logs if e["event"] == "audit"]
    assert len(audits) == 2  # probes are not audited
    ok, refused = audits
    assert ok["principal"] == f"key:{made.record.key_id}" and ok["tenant"] == "acme"
    assert ok["route"] == "/v1/search" and ok["status"] == 200 and ok["transport"] == "rest"
    assert ok["doc_ids"] == ["leave"]
    import hashlib

    assert ok["query_hash"] == hashlib.sha256(b"parental leave").hexdigest()
    assert "parental leave" not in str(ok)  # the query itself is not kept
    assert made.key not in str(logs)
    assert refused["status"] == 401 and refused["principal"] is None
    assert refused["route"] == "/v1/documents/{doc_id}" and refused["reason"] == "invalid API key"


async def test_security_headers_and_cors_closed_unless_allowed() -> None:
    app, _ = await _stack()
    async with _client(app) as c:
        resp = await _search(c, HEADERS)
        assert resp.headers["x-content-type-options"] == "nosniff"
        assert resp.headers["x-frame-options"] == "DENY"
        assert resp.headers["cache-control"] == "no-store"
        assert "default-src 'none'" in resp.headers["content-security-policy"]
        preflight = await c.options(
            "/v1/search",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert "access-control-allow-origin" not in preflight.headers
    allowed, _ = await _stack(cors_origins="https://hr.example.com")
    async with _client(allowed) as c:
        ok = await c.options(
            "/v1/search",
            headers={"Origin": "https://hr.example.com", "Access-Control-Request-Method": "POST"},
        )
        assert ok.headers["access-control-allow-origin"] == "https://hr.example.com"
        evil = await c.options(
            "/v1/search",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert "access-control-allow-origin" not in evil.headers
        assert (await _search(c, {"Origin": "https://hr.example.com"})).status_code == 401


# ------------------------------------------------------------------------------ service token


async def test_internal_endpoints_refuse_calls_without_the_service_token() -> None:
    from datatorag.entrypoints.serve_connector import connector_app

    class Scheduler:
        def trigger(self, tenant: str, source: str) -> dict[str, Any]:
            return {"tenant": tenant, "source": source}

        def status(self) -> list[dict[str, Any]]:
            return []

    token = "t" * 32
    app = connector_app(Scheduler(), token)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://c") as c:
        url = "/internal/sources/acme/hr/sync"
        assert (await c.post(url)).status_code == 401
        assert (await c.post(url, headers={"X-Service-Token": "t" * 31 + "u"})).status_code == 401
        assert (await c.get("/internal/sources")).status_code == 401
        ok = await c.post(url, headers={"X-Service-Token": token})
        assert ok.status_code == 202 and ok.json() == {"tenant": "acme", "source": "hr"}
    # the gateway's sync hook sends it
    from pydantic import SecretStr

    from datatorag.bootstrap.gateway import connector_sync_hook

    _hook, client = connector_sync_hook("http://connector", SecretStr(token))
    assert client.headers["x-service-token"] == token
    await client.aclose()


# ------------------------------------------------------------------------------ gRPC, same edge


async def test_grpc_goes_through_the_same_edge_and_audit() -> None:
    import grpc

    from datatorag.gateway.grpc_gen import gateway_pb2 as pb
    from datatorag.gateway.grpc_gen import gateway_pb2_grpc as pb_grpc
    from datatorag.gateway.grpc_server import grpc_server_for_app

    app, registry = await _stack(rate_limit={**NO_LIMITS, "per_s": 0.5, "burst": 2})
    made = await create_key(registry, "acme")
    server, port = grpc_server_for_app(app, "127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    stub = pb_grpc.QueryGatewayStub(channel)
    try:
        auth = (("authorization", f"Bearer {made.key}"),)
        with capture_logs() as logs:
            reply = await stub.Search(pb.SearchRequest(query="parental leave"), metadata=auth)
            assert [h.citation.doc_id for h in reply.hits] == ["leave"]
            await stub.Search(pb.SearchRequest(query="parental leave"), metadata=auth)
            with pytest.raises(grpc.aio.AioRpcError) as limited:
                await stub.Search(pb.SearchRequest(query="parental leave"), metadata=auth)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.Search(
                    pb.SearchRequest(query="x"), metadata=(("x-api-key", "dtr_nope"),)
                )
        assert limited.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        trailers = dict(limited.value.trailing_metadata() or ())
        assert trailers["error-code"] == "too_many_requests" and int(trailers["retry-after"]) >= 1
        assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
        assert refused.value.details() == "malformed API key"
        audits = [e for e in logs if e["event"] == "audit"]
        assert [a["status"] for a in audits] == [
            "OK",
            "OK",
            "RESOURCE_EXHAUSTED",
            "UNAUTHENTICATED",
        ]
        first = audits[0]
        assert first["transport"] == "grpc" and first["route"] == "/grpc/Search"
        assert first["principal"] == f"key:{made.record.key_id}" and first["doc_ids"] == ["leave"]
        assert first["query_hash"] and first["client"] in ("127.0.0.1", "::1")
    finally:
        await channel.close()
        await server.stop(None)


# ------------------------------------------------------------------------------ the CLI


def test_keys_cli_creates_lists_and_revokes_and_the_gateway_follows(tmp_path, monkeypatch) -> None:
    import json

    from typer.testing import CliRunner

    from datatorag.adapters.embedded.sqlite_registry import SqliteRegistry
    from datatorag.entrypoints.cli import app as cli

    monkeypatch.setenv("DATATORAG_DATA_DIR", str(tmp_path))
    runner = CliRunner()
    made = runner.invoke(
        cli, ["keys", "create", "--tenant", "acme", "--role", "admin", "--group", "hr", "--json"]
    )
    assert made.exit_code == 0, made.output
    created = json.loads(made.stdout)
    key, key_id = created["key"], created["key_id"]
    assert key.startswith(f"dtr_{key_id}_") and "hash" not in created and "salt" not in created
    listed = runner.invoke(cli, ["keys", "list"])
    assert key_id in listed.stdout and "admin" in listed.stdout and "active" in listed.stdout
    assert key not in listed.stdout  # only the prefix is ever shown again
    assert runner.invoke(cli, ["keys", "create", "--tenant", "acme", "--role", "root"]).exit_code

    async def search() -> int:
        registry = SqliteRegistry(tmp_path / "registry.sqlite3")
        try:
            embedder = HashingEmbedder(dim=8)
            index = MemoryVectorIndex(dim=8)
            await index.ensure()
            gw = create_app(
                GatewayDeps(
                    settings=Settings(data_dir=tmp_path, api_key_cache_s=0),
                    index=index,
                    embedder=embedder,
                    registry=registry,
                )
            )
            async with _client(gw) as c:
                return (await _search(c, {"Authorization": f"Bearer {key}"})).status_code
        finally:
            await registry.close()

    assert asyncio.run(search()) == 200
    revoked = runner.invoke(cli, ["keys", "revoke", key_id])
    assert revoked.exit_code == 0 and key_id in revoked.stdout
    assert runner.invoke(cli, ["keys", "revoke", key_id]).exit_code == 1  # already revoked
    assert asyncio.run(search()) == 401
    digest = runner.invoke(cli, ["keys", "hash"], input="dev-key\n")
    assert digest.stdout.strip() == (
        "sha256:7e9f8fd111802be56c379d597842e29b2cebd35ff2133d431a49fa556a18704e"
    )


async def test_the_embedder_refuses_embeds_without_the_service_token() -> None:
    from datatorag.config import EmbeddingSettings
    from datatorag.embedding.http import HttpEmbedder
    from datatorag.embedding.local import LocalEmbedder
    from datatorag.embedding.service import create_embed_app

    token = "s" * 32
    app = create_embed_app(LocalEmbedder(EmbeddingSettings()), 1.0, service_token=token)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=transport, base_url="http://embedder") as c:
            body = {"kind": "query", "texts": ["parental leave"]}
            assert (await c.post("/v1/embed", json=body)).status_code == 401
            wrong = await c.post("/v1/embed", json=body, headers={"X-Service-Token": "x" * 32})
            assert wrong.status_code == 401
            ok = await c.post("/v1/embed", json=body, headers={"X-Service-Token": token})
            assert ok.status_code == 200 and len(ok.json()["vectors"][0]) == ok.json()["dim"]
        # what the gateway and the indexer send; a wrong token fails at once, naming the setting,
        # instead of waiting out connect_wait_s as if the embedder were still loading
        client = HttpEmbedder("http://embedder:8081", service_token=token, transport=transport)
        assert (await client.connect(wait_s=0)).dim == ok.json()["dim"]
        await client.close()
        wrong_client = HttpEmbedder("http://e:8081", service_token="x" * 32, transport=transport)
        started = time.monotonic()
        with pytest.raises(DependencyError, match="DATATORAG_SERVICE_TOKEN") as refused:
            await wrong_client.connect(wait_s=60)
        assert time.monotonic() - started < 10 and "(401)" in str(refused.value)
        await wrong_client.close()
