"""The edge on real gateway processes (uvicorn, the production app): what the report found.

* a 300 MB chunked body without a key is answered 401 at once and never read (the server's RSS
  does not move), and with a key it is cut off at the limit;
* a slow body is cut off at the body timeout;
* the rate limit holds across two gateway processes sharing a real Redis, and does not without it.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator

import httpx
import psutil
import pytest

from tests.servers.edge_gateway import GatewayProcess

KEY, OTHER = "proc-key-acme", "proc-key-acme-2"
BASE_ENV = {
    "DATATORAG_API_KEYS": f"{KEY}=acme,{OTHER}=acme",
    "DATATORAG_LOG_LEVEL": "WARNING",
}
pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def gateway() -> Iterator[GatewayProcess]:
    gw = GatewayProcess.start(
        {
            **BASE_ENV,
            "DATATORAG_GATEWAY_BODY_TIMEOUT_S": "1.5",
            "DATATORAG_RATE_LIMIT_ENABLED": "false",
        }
    )
    yield gw
    gw.stop()


def _rss(gw: GatewayProcess) -> int:
    return psutil.Process(gw.proc.pid).memory_info().rss


def _chunked_post(
    gw: GatewayProcess, headers: dict[str, str], total: int, chunk: int = 1 << 20
) -> tuple[int, int]:
    """POST a chunked body of ``total`` bytes, reading the reply as soon as it comes; returns
    (status, bytes the server let us send before it answered and closed)."""
    sock = socket.create_connection(("127.0.0.1", gw.port), timeout=30)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    sock.sendall(
        (
            "POST /v1/search HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
            f"Transfer-Encoding: chunked\r\n{head}\r\n"
        ).encode()
    )
    sent = 0
    payload = f"{chunk:x}\r\n".encode() + b"{" * chunk + b"\r\n"
    sock.setblocking(False)
    reply = b""
    try:
        while sent < total:
            with contextlib.suppress(BlockingIOError):
                reply += sock.recv(65536)
            if b"\r\n" in reply:
                break
            try:
                sock.setblocking(True)
                sock.settimeout(5)
                sock.sendall(payload)
                sent += chunk
            except OSError:  # the server closed the connection: it will not read more
                break
            finally:
                sock.setblocking(False)
        sock.setblocking(True)
        sock.settimeout(10)
        while b"\r\n" not in reply:
            data = sock.recv(65536)
            if not data:
                break
            reply += data
    finally:
        sock.close()
    status = int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/1.1") else 0
    return status, sent


def test_an_unauthenticated_300_mb_chunked_body_is_never_read(gateway: GatewayProcess) -> None:
    httpx.get(f"{gateway.url}/healthz")
    before = _rss(gateway)
    status, sent = _chunked_post(gateway, {}, 300 << 20)
    assert status == 401
    assert sent < 64 << 20, sent  # answered and closed long before the 300 MB went out
    grown = _rss(gateway) - before
    assert grown < 20 << 20, f"RSS grew by {grown / 2**20:.1f} MiB"


def test_an_authenticated_oversized_chunked_body_is_cut_at_the_limit(
    gateway: GatewayProcess,
) -> None:
    before = _rss(gateway)
    status, sent = _chunked_post(gateway, {"Authorization": f"Bearer {KEY}"}, 300 << 20)
    assert status == 413
    assert sent < 64 << 20, sent
    grown = _rss(gateway) - before
    assert grown < 20 << 20, f"RSS grew by {grown / 2**20:.1f} MiB"


def test_a_slow_body_is_answered_408(gateway: GatewayProcess) -> None:
    sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=10)
    try:
        sock.sendall(
            (
                "POST /v1/search HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
                f"Authorization: Bearer {KEY}\r\nContent-Length: 100\r\n\r\n"
            ).encode()
            + b'{"query": '
        )
        started = time.monotonic()
        reply = sock.recv(65536)
        waited = time.monotonic() - started
    finally:
        sock.close()
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
    assert 1.0 <= waited < 8.0


# ------------------------------------------------------------------------------ two replicas


def _limited_pair(env: dict[str, str]) -> tuple[GatewayProcess, GatewayProcess]:
    limits = {
        "DATATORAG_RATE_LIMIT_PER_S": "0.5",
        "DATATORAG_RATE_LIMIT_BURST": "5",
        "DATATORAG_RATE_LIMIT_AUTH_FAILURES_PER_MIN": "6",
        "DATATORAG_RATE_LIMIT_AUTH_FAILURE_BURST": "3",
    }
    a = GatewayProcess.start({**BASE_ENV, **limits, **env})
    try:
        b = GatewayProcess.start({**BASE_ENV, **limits, **env})
    except BaseException:
        a.stop()
        raise
    return a, b


def _search(gw: GatewayProcess, key: str) -> httpx.Response:
    return httpx.post(
        f"{gw.url}/v1/search",
        json={"query": "parental leave"},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )


def test_the_rate_limit_holds_across_two_gateways_sharing_redis(redis_server) -> None:
    a, b = _limited_pair({"DATATORAG_EDGE_REDIS_URL": redis_server.url})
    try:
        # five tokens between both replicas, requests alternating between them
        codes = [_search(gw, KEY).status_code for gw in (a, b, a, b, a)]
        assert codes == [200] * 5
        over = _search(b, KEY)
        assert over.status_code == 429, over.text
        assert 1 <= int(over.headers["retry-after"]) <= 3  # a token every 2 s
        assert _search(a, KEY).status_code == 429
        # another principal of the same tenant is not limited by the first one's bucket
        assert [_search(gw, OTHER).status_code for gw in (a, b)] == [200, 200]
        time.sleep(2.2)
        assert _search(b, KEY).status_code == 200  # refilled
        # failed authentications from one address are counted across replicas too; once over,
        # the address is refused on every replica, whatever it sends
        wrong = [_search(gw, "guess").status_code for gw in (a, b, a)]
        assert wrong == [401, 401, 401]
        assert _search(b, "guess").status_code == 429
        assert _search(b, OTHER).status_code == 429
    finally:
        a.stop()
        b.stop()


def test_without_redis_each_replica_limits_on_its_own() -> None:
    a, b = _limited_pair({})
    try:
        assert [_search(a, KEY).status_code for _ in range(5)] == [200] * 5
        assert _search(a, KEY).status_code == 429
        assert _search(b, KEY).status_code == 200  # b's bucket is its own
    finally:
        a.stop()
        b.stop()
