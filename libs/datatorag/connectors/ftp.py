"""FTP and FTPS (explicit ``AUTH TLS`` or implicit TLS) sources on aioftp.

* Listing: one MLSD per directory (breadth-first), falling back to LIST for servers without MLSD
  (remembered for the rest of the session). Lines are parsed by us, one at a time, so a name that
  is not UTF-8 (decoded with ``surrogateescape``) or a line nobody can parse becomes a failed
  entry instead of ending the listing. Directories whose names are unsafe are not descended into;
  they are reported as failed entries.
* Downloads: binary, passive (EPSV then PASV), resumed with ``REST <offset>`` after a dropped
  connection so a large file is not restarted from zero.
* Connections: a pool per source, capped by a semaphore per server (``host:port``) shared by every
  source on that server; connect + login retried with exponential backoff and jitter (tenacity);
  a refused login is ``SourceAuthError`` at once (retrying a wrong password only locks accounts).
* ``stats`` counts the FTP commands sent, by verb (the benchmark's "requests made").
"""

from __future__ import annotations

import asyncio
import calendar
import codecs
import ssl
from collections import Counter, deque
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import PurePosixPath
from typing import Any, Literal

import aioftp
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
from datatorag.connectors.paths import check_path, display_path, join, matches
from datatorag.connectors.retry import Backoff, is_network_error
from datatorag.domain.errors import PermanentError
from datatorag.observability.log import get_logger

log = get_logger("connector.ftp")

_CHUNK = 1 << 18

# aioftp decodes every line with one codec; this one keeps undecodable bytes as surrogates, so a
# non-UTF-8 name reaches check_path (and a server message in Latin-1 does not crash the client).
_CODEC = "utf_8_surrogateescape"


def _codec_search(name: str) -> codecs.CodecInfo | None:
    if name.replace("-", "_") != _CODEC:
        return None
    utf8 = codecs.lookup("utf-8")
    return codecs.CodecInfo(
        name=_CODEC,
        encode=lambda s, errors="surrogateescape": utf8.encode(s, "surrogateescape"),
        decode=lambda b, errors="surrogateescape": utf8.decode(b, "surrogateescape"),
    )


codecs.register(_codec_search)


@dataclass
class FtpSettings:
    host: str
    port: int | None = None  # 21, or 990 for implicit TLS
    username: str = "anonymous"
    password: SecretStr | None = None
    root: str = "/"
    tls: Literal["none", "explicit", "implicit"] = "none"
    verify_tls: bool = True
    ca_file: str | None = None  # PEM bundle to trust (a private CA or a self-signed server)
    passive_commands: tuple[str, ...] = ("epsv", "pasv")
    list_command: Literal["auto", "MLSD", "LIST"] = "auto"
    connect_timeout_s: float = 15.0
    socket_timeout_s: float = 60.0
    max_connections: int = 4  # per server, across every source using it
    backoff: Backoff = field(default_factory=Backoff)
    include: Sequence[str] = ("*",)
    exclude: Sequence[str] = ()

    @property
    def effective_port(self) -> int:
        return self.port or (990 if self.tls == "implicit" else 21)

    @property
    def url(self) -> str:
        scheme = "ftp" if self.tls == "none" else "ftps"
        return f"{scheme}://{self.username}@{self.host}:{self.effective_port}{self.root}"

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.tls == "none":
            return None
        ctx = ssl.create_default_context(cafile=self.ca_file)
        if not self.verify_tls:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx


class _CountingClient(aioftp.Client):
    """aioftp client that counts the commands it sends."""

    def __init__(self, stats: Counter[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._stats = stats

    async def command(self, command: str | None = None, *args: Any, **kwargs: Any) -> Any:
        if command:
            self._stats[command.split(" ", 1)[0].upper()] += 1
        return await super().command(command, *args, **kwargs)


def _status(exc: aioftp.StatusCodeError) -> str:
    codes = getattr(exc, "received_codes", ()) or ()
    return str(codes[-1]) if codes else "???"


def _is_transient(exc: BaseException) -> bool:
    """Worth a reconnect: network trouble or a 4xx ("try again later") reply."""
    if isinstance(exc, aioftp.StatusCodeError):
        return _status(exc).startswith("4")
    return is_network_error(exc)


def _mlsd_time(value: str | None) -> float | None:
    """MLSD ``modify`` fact (``YYYYMMDDHHMMSS[.sss]``, UTC) as epoch seconds."""
    if not value:
        return None
    main, _, frac = value.partition(".")
    if len(main) != 14 or not main.isdigit():
        return None
    try:  # slicing, not strptime: this runs once per listed file
        seconds = calendar.timegm(
            (
                int(main[0:4]),
                int(main[4:6]),
                int(main[6:8]),
                int(main[8:10]),
                int(main[10:12]),
                int(main[12:14]),
                0,
                0,
                0,
            )
        )
    except (ValueError, OverflowError):
        return None
    return seconds + (float(f"0.{frac}") if frac.isdigit() else 0.0)


class FtpSource(Source):
    kind = "ftp"

    def __init__(
        self, id: str, tenant: str, settings: FtpSettings, *, max_concurrency: int | None = None
    ) -> None:
        # twice the connections: while one document is being stored (fsync), another downloads
        super().__init__(
            id, tenant, max_concurrency=max_concurrency or 2 * settings.max_connections
        )
        if settings.max_connections < 1:
            raise ValueError("max_connections must be >= 1")
        self.settings = settings
        self.kind = "ftp" if settings.tls == "none" else "ftps"
        self.root = "/" + settings.root.strip("/") if settings.root.strip("/") else "/"
        self.stats: Counter[str] = Counter()
        self._idle: deque[aioftp.Client] = deque()
        self._use_list = settings.list_command == "LIST"

    # -- connections ---------------------------------------------------------------------------
    async def _connect_once(self) -> aioftp.Client:
        s = self.settings
        context = s.ssl_context()
        client = _CountingClient(
            self.stats,
            socket_timeout=s.socket_timeout_s,
            connection_timeout=s.connect_timeout_s,
            encoding=_CODEC,
            ssl=context if s.tls == "implicit" else None,
            passive_commands=s.passive_commands,
        )
        try:
            self.stats["connections"] += 1
            await client.connect(s.host, s.effective_port)
            if s.tls == "explicit":
                await client.upgrade_to_tls(context)
            elif s.tls == "implicit":
                await client._send_tls_protection_commands()  # PBSZ 0 / PROT P: encrypt data too
            password = s.password.get_secret_value() if s.password else ""
            await client.login(s.username, password)
        except BaseException:
            client.close()
            raise
        return client

    async def _connect(self) -> aioftp.Client:
        s = self.settings
        try:
            return await s.backoff.call(self._connect_once, _is_transient)
        except aioftp.StatusCodeError as exc:
            code = _status(exc)
            if code in ("530", "331", "332"):
                raise SourceAuthError(
                    f"login refused for {s.username}@{s.host}:{s.effective_port} ({code})"
                ) from exc
            raise SourceUnavailable(
                f"{s.host}:{s.effective_port} answered {code} while connecting", code="ftp_error"
            ) from exc
        except ssl.SSLError as exc:
            raise SourceAuthError(
                f"TLS with {s.host}:{s.effective_port} failed: {exc.reason or exc}",
                code="tls_error",
            ) from exc
        except (TimeoutError, OSError) as exc:
            raise SourceUnavailable(
                f"cannot reach {s.host}:{s.effective_port} after {s.backoff.attempts} attempts: "
                f"{type(exc).__name__}: {exc}",
                code="unreachable",
            ) from exc

    @asynccontextmanager
    async def _client(self) -> AsyncIterator[aioftp.Client]:
        """A logged-in connection from the pool, within the server's connection limit. A client
        whose user raised (or was closed mid-transfer) is discarded, never reused."""
        s = self.settings
        async with server_limit(s.host, s.effective_port, s.max_connections, scheme="ftp"):
            client = self._idle.pop() if self._idle else await self._connect()
            healthy = False
            try:
                yield client
                healthy = True
            finally:
                if healthy:
                    self._idle.append(client)
                else:
                    client.close()

    async def close(self) -> None:
        while self._idle:
            client = self._idle.pop()
            try:
                await asyncio.wait_for(client.quit(), 2)
            except Exception:  # noqa: BLE001 - closing anyway
                client.close()

    # -- listing -------------------------------------------------------------------------------
    async def _list_dir(self, client: aioftp.Client, path: str) -> list[bytes]:
        """Raw lines of one directory listing (MLSD, or LIST where MLSD is not supported)."""
        if not self._use_list:
            try:
                return await self._read_listing(client, f"MLSD {path}")
            except aioftp.StatusCodeError as exc:
                if not _status(exc).startswith("50") or self.settings.list_command == "MLSD":
                    raise
                self._use_list = True  # 500/502: no MLSD on this server
                log.info("ftp_mlsd_unsupported", source=self.id, host=self.settings.host)
        return await self._read_listing(client, f"LIST {path}")

    async def _read_listing(self, client: aioftp.Client, command: str) -> list[bytes]:
        stream = await client.get_stream(command, "1xx")
        parts: list[bytes] = []
        try:
            # whole blocks, split once: a readline per entry costs a timeout wrapper per line
            async for block in stream.iter_by_block(1 << 16):
                parts.append(block)
        except BaseException:
            stream.close()
            raise
        await stream.finish()
        return b"".join(parts).splitlines(keepends=True)

    def _parse(self, client: aioftp.Client, line: bytes) -> tuple[str, str, dict[str, str]]:
        """(name, type, facts) of one listing line; raises ValueError when it cannot be parsed."""
        if self._use_list:
            name_path, info = client.parse_list_line(line)
            name = str(name_path)
            if " -> " in name and info.get("type") == "link":
                name = name.split(" -> ", 1)[0]
            size, modify = str(info.get("size", "")), str(info.get("modify", ""))
            return name, str(info.get("type", "")), {"size": size, "modify": modify}
        text = line.decode(_CODEC).rstrip("\r\n")
        facts_part, sep, name = text.partition(" ")
        if not sep or not name or "=" not in facts_part:
            raise ValueError("not an MLSD line")
        facts: dict[str, str] = {}
        for fact in facts_part.rstrip(";").split(";"):
            key, _, value = fact.partition("=")
            facts[key.lower()] = value
        return name, facts.get("type", "").lower(), facts

    async def list(self) -> AsyncIterator[SourceEntry]:
        pending: deque[str] = deque([""])  # directories relative to the root
        while pending:
            rel_dir = pending.popleft()
            remote = join(self.root, rel_dir) if rel_dir else self.root
            try:
                async with self._client() as client:
                    lines = await self.settings.backoff.call(
                        partial(self._list_dir, client, remote), is_network_error
                    )
                    parsed = []
                    for line in lines:
                        try:
                            parsed.append(self._parse(client, line))
                        except (ValueError, KeyError, IndexError):
                            parsed.append(("", "unparseable", {"raw": line.decode(_CODEC)}))
            except aioftp.StatusCodeError as exc:
                if not rel_dir:
                    raise SourceUnavailable(
                        f"cannot list {remote} on {self.settings.host}: {_status(exc)} "
                        f"{' '.join(exc.info).strip()}",
                        code="list_failed",
                    ) from exc
                yield SourceEntry(
                    path=rel_dir,
                    size=None,
                    mtime=None,
                    error_code="list_failed",
                    error=f"cannot list directory: {_status(exc)}",
                )
                continue
            except (TimeoutError, OSError) as exc:
                raise SourceUnavailable(
                    f"listing {remote} failed: {type(exc).__name__}: {exc}", code="list_failed"
                ) from exc
            for name, kind, facts in parsed:
                if kind == "unparseable":
                    raw = display_path(facts["raw"], 200)
                    yield SourceEntry(
                        path=join(rel_dir, f"<unparseable:{raw}>")
                        if rel_dir
                        else f"<unparseable:{raw}>",
                        size=None,
                        mtime=None,
                        error_code="unparseable_listing",
                        error=f"listing line could not be parsed: {raw}",
                    )
                    continue
                if name in (".", "..") or kind in ("cdir", "pdir"):
                    continue
                name = name.rsplit("/", 1)[-1] if "/" in name and self._use_list else name
                rel = f"{rel_dir}/{name}" if rel_dir else name
                if kind == "dir":
                    if (bad := unsafe_directory(rel)) is not None:
                        yield bad
                        continue
                    pending.append(rel)
                elif kind == "file":
                    if not matches(rel, self.settings.include, self.settings.exclude):
                        continue
                    size = facts.get("size")
                    yield SourceEntry(
                        path=rel,
                        size=int(size) if size and size.isdigit() else None,
                        mtime=_mlsd_time(facts.get("modify")),
                    )

    # -- fetching ------------------------------------------------------------------------------
    async def fetch(self, entry: SourceEntry) -> AsyncIterator[bytes]:
        check_path(entry.path)
        remote = join(self.root, entry.path)

        def resumed(offset: int, attempt: int) -> None:
            log.info("ftp_resume", source=self.id, path=entry.path, offset=offset, attempt=attempt)

        download = resumable_download(
            partial(self._read_from, remote, entry.path),
            path=entry.path,
            backoff=self.settings.backoff,
            retry_on=(aioftp.StatusCodeError, TimeoutError, OSError),  # a 5xx: PermanentError
            stats=self.stats,
            on_resume=resumed,
        )
        async with aclosing(download) as blocks:
            async for block in blocks:
                yield block

    async def _read_from(self, remote: str, path: str, offset: int) -> AsyncGenerator[bytes, None]:
        """``RETR`` of ``remote`` from ``offset`` on (``REST``) over a pooled connection."""
        try:
            async with self._client() as client:
                stream = await client.download_stream(remote, offset=offset)
                try:
                    async for block in stream.iter_by_block(_CHUNK):
                        yield block
                except BaseException:
                    stream.close()
                    raise
                await stream.finish()
        except aioftp.StatusCodeError as exc:
            code = _status(exc)
            if code.startswith("5"):
                reason = " ".join(exc.info).strip()
                raise PermanentError(
                    f"{path}: {code} {reason}", code="vanished" if code == "550" else "ftp_error"
                ) from exc
            raise

    async def stat(self, entry: SourceEntry) -> SourceEntry | None:
        if self._use_list:
            return None  # LIST times are minutes at best: comparing them would cry wolf
        try:
            async with self._client() as client:
                info = await client.stat(PurePosixPath(join(self.root, entry.path)))
        except (TimeoutError, aioftp.StatusCodeError, OSError, ValueError, KeyError):
            return None
        size = info.get("size")
        return SourceEntry(
            path=entry.path,
            size=int(size) if isinstance(size, str) and size.isdigit() else None,
            mtime=_mlsd_time(str(info.get("modify", "")) or None),
        )
