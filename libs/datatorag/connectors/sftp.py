"""SFTP source on asyncssh: the FTP source's behaviour over SSH.

One SSH connection per source carries the SFTP session (requests are pipelined, so it is not a
bottleneck); a semaphore per server caps concurrent transfers. Host keys are checked against a
``known_hosts`` file unless checking is switched off explicitly; authentication by password or
private key (``ssh-agent`` and ``~/.ssh/config`` are never consulted: a service must behave the same
on every machine). A dropped connection is re-established with backoff and a download resumes at
the offset it reached. Names are decoded with ``surrogateescape`` so a non-UTF-8 name becomes a
recorded failure, never a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import stat as stat_mod
from collections import Counter, deque
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from functools import partial

import asyncssh
from pydantic import SecretStr

from datatorag.connectors.base import (
    Source,
    SourceAuthError,
    SourceEntry,
    SourceUnavailable,
    unsafe_directory,
)
from datatorag.connectors.downloads import resumable_download
from datatorag.connectors.fairness import server_limit
from datatorag.connectors.paths import check_path, join, matches
from datatorag.connectors.retry import Backoff
from datatorag.domain.errors import PermanentError
from datatorag.observability.log import get_logger

log = get_logger("connector.sftp")

_CHUNK = 1 << 18
_RETRYABLE = (OSError, asyncio.TimeoutError, asyncssh.ConnectionLost, asyncssh.DisconnectError)


@dataclass
class SftpSettings:
    host: str
    port: int = 22
    username: str = ""
    password: SecretStr | None = None
    private_key: SecretStr | None = None  # the key itself (OpenSSH/PEM text), from a secret
    private_key_passphrase: SecretStr | None = None
    known_hosts: str | None = None  # path; None with host_key_checking: ~/.ssh/known_hosts
    host_key_checking: bool = True
    root: str = "/"
    connect_timeout_s: float = 15.0
    max_connections: int = 4  # concurrent transfers per server
    backoff: Backoff = field(default_factory=Backoff)
    include: Sequence[str] = ("*",)
    exclude: Sequence[str] = ()

    @property
    def url(self) -> str:
        return f"sftp://{self.username}@{self.host}:{self.port}{self.root}"


def _is_dir(attrs: asyncssh.SFTPAttrs) -> bool:
    return attrs.permissions is not None and stat_mod.S_ISDIR(attrs.permissions)


def _is_file(attrs: asyncssh.SFTPAttrs) -> bool:
    return attrs.permissions is not None and stat_mod.S_ISREG(attrs.permissions)


def _mtime(attrs: asyncssh.SFTPAttrs) -> float | None:
    if attrs.mtime_ns is not None:
        return attrs.mtime_ns / 1e9
    return float(attrs.mtime) if attrs.mtime is not None else None


class SftpSource(Source):
    kind = "sftp"

    def __init__(
        self, id: str, tenant: str, settings: SftpSettings, *, max_concurrency: int | None = None
    ) -> None:
        super().__init__(
            id, tenant, max_concurrency=max_concurrency or 2 * settings.max_connections
        )
        if not settings.password and not settings.private_key:
            raise ValueError("an SFTP source needs a password or a private key")
        self.settings = settings
        root = settings.root.rstrip("/")
        self.root = root or "/"
        self.stats: Counter[str] = Counter()
        self._conn: asyncssh.SSHClientConnection | None = None
        self._sftp: asyncssh.SFTPClient | None = None
        self._lock = asyncio.Lock()

    # -- connection ----------------------------------------------------------------------------
    async def _connect_once(self) -> tuple[asyncssh.SSHClientConnection, asyncssh.SFTPClient]:
        s = self.settings
        keys = []
        if s.private_key is not None:
            passphrase = (
                s.private_key_passphrase.get_secret_value() if s.private_key_passphrase else None
            )
            keys.append(asyncssh.import_private_key(s.private_key.get_secret_value(), passphrase))
        known_hosts: object = () if s.known_hosts is None else s.known_hosts
        if not s.host_key_checking:
            known_hosts = None
        self.stats["connections"] += 1
        conn = await asyncssh.connect(
            s.host,
            s.port,
            username=s.username,
            password=s.password.get_secret_value() if s.password else None,
            client_keys=keys or None,
            known_hosts=known_hosts,
            agent_path=None,
            config=None,
            connect_timeout=s.connect_timeout_s,
            login_timeout=s.connect_timeout_s,
            preferred_auth=("publickey", "password") if keys else ("password",),
        )
        try:
            sftp = await conn.start_sftp_client(path_errors="surrogateescape")
        except BaseException:
            conn.close()
            raise
        return conn, sftp

    async def _session(self) -> asyncssh.SFTPClient:
        async with self._lock:
            if self._sftp is not None and self._conn is not None and not self._conn.is_closed():
                return self._sftp
            s = self.settings
            try:
                conn, sftp = await s.backoff.call(
                    self._connect_once,
                    lambda e: (
                        isinstance(e, _RETRYABLE)
                        and not isinstance(
                            e, asyncssh.PermissionDenied | asyncssh.HostKeyNotVerifiable
                        )
                    ),
                )
            except asyncssh.PermissionDenied as exc:
                raise SourceAuthError(
                    f"authentication refused for {s.username}@{s.host}:{s.port}: {exc.reason}"
                ) from exc
            except asyncssh.HostKeyNotVerifiable as exc:
                raise SourceAuthError(
                    f"host key of {s.host}:{s.port} not trusted: {exc.reason}",
                    code="host_key_not_verifiable",
                ) from exc
            except (TimeoutError, asyncssh.Error, OSError) as exc:
                raise SourceUnavailable(
                    f"cannot reach {s.host}:{s.port} after {s.backoff.attempts} attempts: "
                    f"{type(exc).__name__}: {exc}",
                    code="unreachable",
                ) from exc
            self._conn, self._sftp = conn, sftp
            return sftp

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = self._sftp = None

    async def close(self) -> None:
        conn = self._conn
        self._drop()
        if conn is not None:
            with contextlib.suppress(TimeoutError, OSError):
                await asyncio.wait_for(conn.wait_closed(), 2)

    def _remote(self, rel: str) -> str:
        return join(self.root, rel) if rel else self.root

    # -- listing -------------------------------------------------------------------------------
    async def list(self) -> AsyncIterator[SourceEntry]:
        pending: deque[str] = deque([""])
        while pending:
            rel_dir = pending.popleft()
            remote = self._remote(rel_dir)
            try:
                sftp = await self._session()
                self.stats["READDIR"] += 1
                names = await sftp.readdir(remote)
            except (SourceAuthError, SourceUnavailable):
                raise
            except asyncssh.SFTPError as exc:
                if not rel_dir:
                    raise SourceUnavailable(
                        f"cannot list {remote} on {self.settings.host}: {exc.reason}",
                        code="list_failed",
                    ) from exc
                yield SourceEntry(
                    path=rel_dir,
                    size=None,
                    mtime=None,
                    error_code="list_failed",
                    error=f"cannot list directory: {exc.reason}",
                )
                continue
            except _RETRYABLE as exc:
                self._drop()
                raise SourceUnavailable(
                    f"listing {remote} failed: {type(exc).__name__}: {exc}", code="list_failed"
                ) from exc
            for item in sorted(names, key=lambda n: str(n.filename)):
                name = str(item.filename)
                if name in (".", ".."):
                    continue
                rel = f"{rel_dir}/{name}" if rel_dir else name
                if _is_dir(item.attrs):
                    if (bad := unsafe_directory(rel)) is not None:
                        yield bad
                        continue
                    pending.append(rel)
                elif _is_file(item.attrs) and matches(
                    rel, self.settings.include, self.settings.exclude
                ):
                    yield SourceEntry(path=rel, size=item.attrs.size, mtime=_mtime(item.attrs))

    # -- fetching ------------------------------------------------------------------------------
    async def fetch(self, entry: SourceEntry) -> AsyncIterator[bytes]:
        check_path(entry.path)

        def resumed(offset: int, attempt: int) -> None:
            log.info("sftp_resume", source=self.id, path=entry.path, offset=offset)

        download = resumable_download(
            partial(self._read_from, self._remote(entry.path), entry.path),
            path=entry.path,
            backoff=self.settings.backoff,
            retry_on=_RETRYABLE,
            stats=self.stats,
            on_failure=lambda _exc: self._drop(),  # reconnect for the next attempt
            on_resume=resumed,
        )
        async with aclosing(download) as blocks:
            async for block in blocks:
                yield block

    async def _read_from(self, remote: str, path: str, offset: int) -> AsyncGenerator[bytes, None]:
        """Reads of ``remote`` from ``offset`` on, within the server's transfer limit."""
        s = self.settings
        try:
            async with server_limit(s.host, s.port, s.max_connections, scheme="sftp"):
                sftp = await self._session()
                self.stats["OPEN"] += 1
                async with sftp.open(remote, "rb", encoding=None, block_size=_CHUNK) as fh:
                    while True:
                        self.stats["READ"] += 1
                        block: bytes = await fh.read(_CHUNK, offset)
                        if not block:
                            return
                        offset += len(block)
                        yield block
        except asyncssh.SFTPNoSuchFile as exc:
            raise PermanentError(f"{path}: {exc.reason}", code="vanished") from exc
        except asyncssh.SFTPPermissionDenied as exc:
            raise PermanentError(f"{path}: {exc.reason}", code="unreadable") from exc
        except asyncssh.SFTPError as exc:
            raise PermanentError(f"{path}: {exc.reason}", code="sftp_error") from exc

    async def stat(self, entry: SourceEntry) -> SourceEntry | None:
        try:
            sftp = await self._session()
            attrs = await sftp.stat(self._remote(entry.path))
        except (TimeoutError, asyncssh.Error, OSError, SourceUnavailable):
            return None
        return SourceEntry(path=entry.path, size=attrs.size, mtime=_mtime(attrs))
