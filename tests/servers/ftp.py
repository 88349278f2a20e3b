"""Session fixtures for real FTP, FTPS and SFTP servers on 127.0.0.1 serving a temporary directory.

* ``ftp_server``: pyftpdlib (threaded) with MLSD, REST and passive mode; a user with a password.
  Names go out as raw bytes (``unicode_errors = surrogateescape``) so tests can serve names that
  are not UTF-8. ``flaky`` makes a download of a chosen file break after N bytes (resume tests).
* ``ftp_list_only_server``: the same without MLSD/MLST (500), to exercise the LIST fallback.
* ``ftps_server``: explicit FTPS (``AUTH TLS``, TLS required on control and data channels) with a
  self-signed certificate generated at start (SAN 127.0.0.1/localhost; ``cafile`` trusts it).
* ``sftp_server``: asyncssh with password and public-key auth (its own event loop in a thread), a
  generated host key and a ``known_hosts`` file naming it.

Each test should work in its own subdirectory of ``root`` (``server.tree("name")``), so tests share
one server without seeing each other's files.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.servers._require import unavailable

USER = "hr-feed"
PASSWORD = "s3cret-pass"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class FileServer:
    kind: str  # ftp | ftps | sftp
    host: str
    port: int
    user: str
    password: str
    root: Path
    cafile: str | None = None
    known_hosts: str | None = None
    client_key: str | None = None  # private key file accepted by the SFTP server
    flaky: dict[str, list[int]] = field(default_factory=dict)  # rel path -> [failures, after_bytes]

    def tree(self, name: str | None = None) -> Path:
        """A fresh directory under the served root; its name is the source root to use."""
        path = self.root / (name or uuid.uuid4().hex[:12])
        path.mkdir(parents=True, exist_ok=False)
        return path

    def remote(self, local: Path) -> str:
        return "/" + local.relative_to(self.root).as_posix()


# -- certificates -------------------------------------------------------------------------------
def make_self_signed(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1/localhost: (combined cert+key PEM, cert PEM)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "datatorag-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    combined = directory / "server.pem"
    combined.write_bytes(cert_pem + key_pem)
    cafile = directory / "ca.pem"
    cafile.write_bytes(cert_pem)
    return combined, cafile


# -- pyftpdlib ----------------------------------------------------------------------------------
class _FlakyFile:
    """Wraps a served file: raises after ``limit`` bytes (a connection dropped mid-transfer)."""

    def __init__(self, fh: Any, limit: int) -> None:
        self._fh = fh
        self._left = limit

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            raise OSError("simulated network failure")
        data = self._fh.read(min(n, self._left) if n and n > 0 else self._left)
        self._left -= len(data)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fh, name)


def _start_ftp(
    root: Path,
    *,
    tls_cert: Path | None = None,
    list_only: bool = False,
    flaky: dict[str, list[int]] | None = None,
) -> tuple[Any, int]:
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.filesystems import AbstractedFS
    from pyftpdlib.handlers import FTPHandler, TLS_FTPHandler
    from pyftpdlib.servers import ThreadedFTPServer

    flaky_map = flaky if flaky is not None else {}

    class FS(AbstractedFS):
        def open(self, filename: str, mode: str) -> Any:
            fh = super().open(filename, mode)
            rel = os.path.relpath(filename, root).replace(os.sep, "/")
            plan = flaky_map.get(rel)
            if plan and plan[0] > 0 and "r" in mode:
                plan[0] -= 1
                return _FlakyFile(fh, plan[1])
            return fh

    authorizer = DummyAuthorizer()
    authorizer.add_user(USER, PASSWORD, str(root), perm="elr")
    base = TLS_FTPHandler if tls_cert else FTPHandler
    attrs: dict[str, Any] = {
        "authorizer": authorizer,
        "abstracted_fs": FS,
        "unicode_errors": "surrogateescape",
        "auth_failed_timeout": 0,
        "use_sendfile": False,
        "timeout": 60,
        "banner": "datatorag test ftp",
    }
    if tls_cert:
        attrs.update(certfile=str(tls_cert), tls_control_required=True, tls_data_required=True)
    handler = type("Handler", (base,), attrs)
    if list_only:
        proto = dict(handler.proto_cmds)
        proto.pop("MLSD", None)
        proto.pop("MLST", None)
        handler.proto_cmds = proto
    from pyftpdlib.ioloop import IOLoop

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    # each server gets its own IOLoop: pyftpdlib's default one is a process-wide singleton
    server = ThreadedFTPServer(sock, handler, ioloop=IOLoop())
    server.max_cons = 64
    thread = threading.Thread(target=server.serve_forever, kwargs={"timeout": 0.2}, daemon=True)
    thread.start()
    return server, port


def _ftp_fixture(
    tmp_path_factory: pytest.TempPathFactory, kind: str, **kw: Any
) -> Iterator[FileServer]:
    try:
        import pyftpdlib  # noqa: F401
    except ImportError as exc:  # pragma: no cover
        unavailable("FTP server", f"pyftpdlib missing: {exc}")
    root = tmp_path_factory.mktemp(f"{kind}-root")
    cafile = None
    cert = None
    if kind == "ftps":
        cert, ca = make_self_signed(tmp_path_factory.mktemp("ftps-cert"))
        cafile = str(ca)
    flaky: dict[str, list[int]] = {}
    server, port = _start_ftp(root, tls_cert=cert, flaky=flaky, **kw)
    try:
        yield FileServer(kind, "127.0.0.1", port, USER, PASSWORD, root, cafile=cafile, flaky=flaky)
    finally:
        server.close_all()


@pytest.fixture(scope="session")
def ftp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FileServer]:
    yield from _ftp_fixture(tmp_path_factory, "ftp")


@pytest.fixture(scope="session")
def ftp_list_only_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FileServer]:
    yield from _ftp_fixture(tmp_path_factory, "ftp", list_only=True)


@pytest.fixture(scope="session")
def ftps_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FileServer]:
    yield from _ftp_fixture(tmp_path_factory, "ftps")


# -- asyncssh -----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def sftp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FileServer]:
    try:
        import asyncssh
    except ImportError as exc:  # pragma: no cover
        unavailable("SFTP server", f"asyncssh missing: {exc}")
    root = tmp_path_factory.mktemp("sftp-root")
    keys = tmp_path_factory.mktemp("sftp-keys")
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key_path = keys / "client_ed25519"
    client_key.write_private_key(str(client_key_path))
    port = _free_port()
    (keys / "known_hosts").write_text(
        f"[127.0.0.1]:{port} {host_key.export_public_key().decode().strip()}\n"
    )
    authorized = asyncssh.import_authorized_keys(client_key.export_public_key().decode())

    class Server(asyncssh.SSHServer):
        def begin_auth(self, username: str) -> bool:
            return True

        def password_auth_supported(self) -> bool:
            return True

        def validate_password(self, username: str, password: str) -> bool:
            return username == USER and password == PASSWORD

        def public_key_auth_supported(self) -> bool:
            return True

        def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
            return (
                username == USER and authorized.validate(key, "127.0.0.1", "127.0.0.1") is not None
            )

    def sftp_factory(chan: Any) -> asyncssh.SFTPServer:
        return asyncssh.SFTPServer(chan, chroot=os.fsencode(root))

    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, Any] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)

        async def start() -> None:
            holder["server"] = await asyncssh.listen(
                "127.0.0.1",
                port,
                server_host_keys=[host_key],
                server_factory=Server,
                sftp_factory=sftp_factory,
                allow_scp=False,
            )
            ready.set()

        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    if not ready.wait(15):
        unavailable("SFTP server", "asyncssh server did not start in 15 s")
    try:
        yield FileServer(
            "sftp",
            "127.0.0.1",
            port,
            USER,
            PASSWORD,
            root,
            known_hosts=str(keys / "known_hosts"),
            client_key=str(client_key_path),
        )
    finally:
        server = holder["server"]
        loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
