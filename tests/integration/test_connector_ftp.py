"""FTP, FTPS and SFTP sources against real servers on 127.0.0.1 serving generated trees: add,
change, rename and delete between syncs and check exactly what flows to the parse queue; hostile
names; wrong credentials; unreachable servers; zero-byte and oversized files; resumed downloads;
the per-server connection limit; an incremental sync that downloads nothing."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import pytest
from pydantic import SecretStr

from datatorag.connectors.base import Source
from datatorag.connectors.fairness import server_limit
from datatorag.connectors.ftp import FtpSettings, FtpSource
from datatorag.connectors.retry import Backoff
from datatorag.connectors.sftp import SftpSettings, SftpSource
from datatorag.domain.models import DocumentStatus
from tests.fakes.connector_env import ConnectorEnv
from tests.servers.ftp import FileServer

pytestmark = pytest.mark.timeout(90)

FAST = Backoff(attempts=3, initial_s=0.01, max_s=0.05, jitter_s=0.01)
KINDS = ["ftp", "ftps", "ftp-list", "sftp"]


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[ConnectorEnv]:
    e = ConnectorEnv.create(tmp_path, max_document_bytes=64 * 1024)
    yield e
    await e.close()


@pytest.fixture(params=KINDS)
def server(request: pytest.FixtureRequest) -> FileServer:
    name = {
        "ftp": "ftp_server",
        "ftps": "ftps_server",
        "ftp-list": "ftp_list_only_server",
        "sftp": "sftp_server",
    }[request.param]
    return request.getfixturevalue(name)


def make_source(server: FileServer, root: Path, **kw: object) -> Source:
    remote = server.remote(root)
    if server.kind == "sftp":
        settings = SftpSettings(
            host=server.host,
            port=server.port,
            username=server.user,
            password=SecretStr(server.password),
            known_hosts=server.known_hosts,
            root=remote,
            backoff=FAST,
        )
        for k, v in kw.items():
            setattr(settings, k, v)
        return SftpSource("files", "acme", settings)
    settings_ftp = FtpSettings(
        host=server.host,
        port=server.port,
        username=server.user,
        password=SecretStr(server.password),
        root=remote,
        tls="explicit" if server.kind == "ftps" else "none",
        ca_file=server.cafile,
        backoff=FAST,
    )
    for k, v in kw.items():
        setattr(settings_ftp, k, v)
    return FtpSource("files", "acme", settings_ftp)


def write(root: Path, rel: str, data: bytes, mtime: float | None = None) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    if mtime is not None:
        os.utime(p, (mtime, mtime))


def write_raw(root: Path, name: bytes, data: bytes) -> None:
    with open(os.path.join(os.fsencode(root), name), "wb") as fh:
        fh.write(data)


async def test_add_change_rename_delete(env: ConnectorEnv, server: FileServer) -> None:
    root = server.tree()
    # recent times: LIST shows hours:minutes only for files younger than six months
    t0 = int(time.time()) - 3600
    write(root, "policies/leave.txt", b"20 days", t0)
    write(root, "policies/remote.txt", b"3 days a week", t0)
    write(root, "handbook.md", b"# Handbook", t0)
    write(root, "old-name.txt", b"moved", t0)
    write(root, "tmp/~lock.txt", b"lock", t0)
    src = make_source(server, root, exclude=("~*",))
    run = await env.sync(src)
    assert run.status == "ok", run.error
    assert await env.flow() == [
        ("fetched", "handbook.md"),
        ("fetched", "old-name.txt"),
        ("fetched", "policies/leave.txt"),
        ("fetched", "policies/remote.txt"),
    ]

    write(root, "policies/leave.txt", b"25 days", t0 + 120)  # changed
    (root / "old-name.txt").rename(root / "new-name.txt")  # renamed
    (root / "policies/remote.txt").unlink()  # deleted
    write(root, "policies/new.txt", b"new policy", t0 + 120)  # added
    run = await env.sync(src)
    assert run.status == "ok", run.error
    assert await env.flow() == [
        ("deleted", "old-name.txt"),
        ("deleted", "policies/remote.txt"),
        ("fetched", "new-name.txt"),
        ("fetched", "policies/leave.txt"),
        ("fetched", "policies/new.txt"),
    ]
    assert (run.counts["new"], run.counts["changed"], run.counts["unchanged"]) == (2, 1, 1)
    assert run.counts["deleted"] == 2

    # nothing changed: one listing pass and no download at all
    before = dict(src.stats)
    run = await env.sync(src)
    assert await env.flow() == []
    assert run.counts["unchanged"] == 4
    after = dict(src.stats)
    downloads = ("RETR", "OPEN")
    assert all(after.get(k, 0) == before.get(k, 0) for k in downloads), (before, after)
    await src.close()


async def test_hash_is_the_final_word(env: ConnectorEnv, ftp_server: FileServer) -> None:
    root = ftp_server.tree()
    write(root, "a.txt", b"same bytes", 1_700_000_000)
    src = make_source(ftp_server, root)
    await env.sync(src)
    await env.drain()
    write(root, "a.txt", b"same bytes", 1_700_000_500)  # touched: new mtime, same content
    run = await env.sync(src)
    assert run.counts["unchanged"] == 1 and await env.flow() == []
    retr = src.stats["RETR"]
    run = await env.sync(src)  # the touched hints are remembered: no second download
    assert src.stats["RETR"] == retr and run.counts["unchanged"] == 1
    await src.close()


async def test_hostile_names_zero_bytes_and_oversize(env: ConnectorEnv, server: FileServer) -> None:
    root = server.tree()
    write(root, "ok.txt", b"fine")
    write(root, "empty.txt", b"")
    write(root, "huge.bin", b"x" * (64 * 1024 + 1))
    write_raw(root, b"caf\xe9-latin1.txt", b"latin-1 name")
    write(root, "bad\nname.txt", b"newline in the name")
    deep = "/".join(["d" * 200] * 6)  # > 1024 bytes in all
    write(root, deep + "/deep.txt", b"too deep")
    src = make_source(server, root)
    run = await env.sync(src)
    assert run.status == "ok", run.error
    assert await env.flow() == [("fetched", "ok.txt")]
    failed = await env.registry.find(tenant="acme", status=DocumentStatus.FAILED)
    codes = {r.error_code for r in failed}
    assert {"empty_file", "too_large", "invalid_utf8", "name_too_long"} <= codes
    by_code = {r.error_code: r for r in failed}
    assert by_code["invalid_utf8"].path == "caf\\xe9-latin1.txt"
    assert "65537 bytes exceeds the limit of 65536" in (by_code["too_large"].reason or "")
    # the newline name never becomes a file outside the tree nor a crash: it is a failure too
    assert any("name" in r.path for r in failed if r.error_code not in ("empty_file",))
    assert run.counts["failed"] == len(failed)
    await src.close()


async def test_wrong_credentials(env: ConnectorEnv, server: FileServer) -> None:
    root = server.tree()
    write(root, "a.txt", b"a")
    src = make_source(server, root, password=SecretStr("wrong-password"))
    run = await env.sync(src)
    assert run.status == "failed"
    assert run.error is not None and run.error.startswith("auth_failed"), run.error
    assert "wrong-password" not in run.error
    assert await env.drain() == []
    assert src.stats["connections"] == 1  # a refused login is not retried
    await src.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("kind", ["ftp", "sftp"])
async def test_unreachable_server(env: ConnectorEnv, kind: str) -> None:
    port = closed_port()
    if kind == "ftp":
        src: Source = FtpSource(
            "files", "acme", FtpSettings(host="127.0.0.1", port=port, backoff=FAST)
        )
    else:
        src = SftpSource(
            "files",
            "acme",
            SftpSettings(
                host="127.0.0.1", port=port, username="u", password=SecretStr("p"), backoff=FAST
            ),
        )
    run = await env.sync(src)
    assert run.status == "failed"
    assert run.error is not None and run.error.startswith("unreachable") and str(port) in run.error
    assert src.stats["connections"] == FAST.attempts  # retried with backoff, then gave up
    await src.close()


async def test_ftps_rejects_an_untrusted_certificate(
    env: ConnectorEnv, ftps_server: FileServer
) -> None:
    root = ftps_server.tree()
    write(root, "a.txt", b"a")
    src = make_source(ftps_server, root, ca_file=None)  # system CAs do not know our test CA
    run = await env.sync(src)
    assert run.status == "failed" and (run.error or "").startswith("tls_error"), run.error
    trusting = make_source(ftps_server, root, ca_file=None, verify_tls=False)
    assert (await env.sync(trusting)).status == "ok"
    await src.close()
    await trusting.close()


async def test_plain_ftp_refused_by_a_tls_only_server(
    env: ConnectorEnv, ftps_server: FileServer
) -> None:
    root = ftps_server.tree()
    src = make_source(ftps_server, root, tls="none")
    run = await env.sync(src)
    assert run.status == "failed" and run.error is not None
    assert "TLS" in run.error or "SSL" in run.error or "550" in run.error or "530" in run.error
    await src.close()


async def test_sftp_host_key_checking(
    env: ConnectorEnv, sftp_server: FileServer, tmp_path: Path
) -> None:
    root = sftp_server.tree()
    write(root, "a.txt", b"a")
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"[127.0.0.1]:{sftp_server.port} {other}\n")
    src = make_source(sftp_server, root, known_hosts=str(wrong))
    run = await env.sync(src)
    assert run.status == "failed" and (run.error or "").startswith("host_key_not_verifiable")
    await src.close()
    unchecked = make_source(sftp_server, root, known_hosts=str(wrong), host_key_checking=False)
    assert (await env.sync(unchecked)).status == "ok"
    await unchecked.close()


async def test_sftp_key_auth(env: ConnectorEnv, sftp_server: FileServer) -> None:
    root = sftp_server.tree()
    write(root, "a.txt", b"key auth")
    assert sftp_server.client_key
    client_key = await asyncio.to_thread(Path(sftp_server.client_key).read_text)
    src = make_source(sftp_server, root, password=None, private_key=SecretStr(client_key))
    run = await env.sync(src)
    assert run.status == "ok" and await env.flow() == [("fetched", "a.txt")]
    await src.close()


async def test_ftp_download_resumes_after_a_dropped_connection(
    env: ConnectorEnv, ftp_server: FileServer
) -> None:
    root = ftp_server.tree()
    data = os.urandom(60 * 1024)
    write(root, "big.bin", data)
    rel = f"{root.name}/big.bin"
    ftp_server.flaky[rel] = [2, 20 * 1024]  # the first two transfers break after 20 KiB
    src = make_source(ftp_server, root)
    run = await env.sync(src)
    assert run.status == "ok", run.error
    assert src.stats["resumes"] == 2 and src.stats["REST"] == 2
    (msg,) = await env.drain()
    assert msg.content_hash == hashlib.sha256(data).hexdigest()
    assert await env.blobstore.get(msg.blob_key) == data
    await src.close()


async def test_connection_limit_per_server(env: ConnectorEnv, ftp_server: FileServer) -> None:
    root = ftp_server.tree()
    for i in range(30):
        write(root, f"f{i:02d}.txt", f"file {i}".encode())
    src = make_source(ftp_server, root, max_connections=2)
    src.max_concurrency = 8  # more documents in flight than connections allowed
    limit = server_limit(ftp_server.host, ftp_server.port, 2, scheme="ftp")
    limit.peak = 0
    run = await env.sync(src)
    assert run.status == "ok" and run.counts["new"] == 30
    assert src.stats["connections"] <= 2 and limit.peak == 2
    await src.close()


async def test_mlsd_fallback_to_list(env: ConnectorEnv, ftp_list_only_server: FileServer) -> None:
    root = ftp_list_only_server.tree()
    write(root, "sub/a.txt", b"a")
    src = make_source(ftp_list_only_server, root)
    run = await env.sync(src)
    assert run.status == "ok" and await env.flow() == [("fetched", "sub/a.txt")]
    assert src.stats["LIST"] >= 2 and src.stats["MLSD"] == 1  # tried once, then remembered
    await src.close()
