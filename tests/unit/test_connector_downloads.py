"""Resumable downloads: the shared helper, and the SFTP and S3 sources' use of it over fake
transports whose streams break part-way (the FTP source's resume runs against a real server in
tests/integration/test_connector_ftp.py)."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from types import TracebackType
from typing import Any

import asyncssh
import pytest
from botocore.exceptions import ClientError
from pydantic import SecretStr

from datatorag.connectors.base import (
    SourceAuthError,
    SourceEntry,
    SourceError,
    SourceUnavailable,
    closing_stream,
)
from datatorag.connectors.downloads import resumable_download
from datatorag.connectors.retry import Backoff
from datatorag.connectors.s3 import S3Settings, S3Source
from datatorag.connectors.sftp import SftpSettings, SftpSource
from datatorag.domain.errors import PermanentError, TransientError

pytestmark = pytest.mark.timeout(30)

FAST = Backoff(attempts=3, initial_s=0.001, max_s=0.002, jitter_s=0.0)
DATA = os.urandom(10_000)


async def collect(stream: AsyncIterator[bytes]) -> bytes:
    out = bytearray()
    async with closing_stream(stream) as blocks:
        async for block in blocks:
            out += block
    return bytes(out)


def flaky_reader(
    data: bytes, breaks: list[int], error: type[BaseException] = OSError
) -> tuple[Any, list[int]]:
    """``read_from`` over ``data`` whose n-th stream breaks after ``breaks[n]`` bytes."""
    offsets: list[int] = []

    async def read_from(offset: int) -> AsyncGenerator[bytes, None]:
        offsets.append(offset)
        stop = offset + breaks.pop(0) if breaks else len(data)
        pos = offset
        while pos < len(data):
            if pos >= stop:
                raise error("connection dropped")
            end = min(pos + 1000, stop)
            yield data[pos:end]
            pos = end

    return read_from, offsets


# -- the helper --------------------------------------------------------------------------------
async def test_resumes_at_the_offset_reached() -> None:
    read_from, offsets = flaky_reader(DATA, [2500, 1000])
    stats: Counter[str] = Counter()
    resumed: list[tuple[int, int]] = []
    failures: list[BaseException] = []
    got = await collect(
        resumable_download(
            read_from,
            path="a.bin",
            backoff=FAST,
            retry_on=(OSError,),
            stats=stats,
            on_failure=failures.append,
            on_resume=lambda offset, attempt: resumed.append((offset, attempt)),
        )
    )
    assert got == DATA
    assert offsets == [0, 2500, 3500]
    assert resumed == [(2500, 1), (3500, 2)]
    assert stats["resumes"] == 2 and len(failures) == 2


async def test_gives_up_after_the_attempts_with_a_transient_error() -> None:
    read_from, offsets = flaky_reader(DATA, [1000, 1000, 1000])
    stats: Counter[str] = Counter()
    failures: list[BaseException] = []
    with pytest.raises(TransientError) as info:
        await collect(
            resumable_download(
                read_from,
                path="a.bin",
                backoff=FAST,
                retry_on=(OSError,),
                stats=stats,
                on_failure=failures.append,
            )
        )
    assert str(info.value) == (
        "download of a.bin failed after 3 attempts at byte 3000: OSError: connection dropped"
    )
    assert isinstance(info.value.__cause__, OSError)
    assert offsets == [0, 1000, 2000]
    assert stats["resumes"] == 2 and len(failures) == 3  # on_failure sees the last one too


@pytest.mark.parametrize(
    "error",
    [
        PermanentError("gone", code="vanished"),
        SourceUnavailable("server went away"),
        SourceAuthError("refused"),
        ValueError("not a network error"),
    ],
)
async def test_errors_not_worth_a_retry_end_it_at_once(error: Exception) -> None:
    calls = 0

    async def read_from(offset: int) -> AsyncGenerator[bytes, None]:
        nonlocal calls
        calls += 1
        yield b"x"
        raise error

    stats: Counter[str] = Counter()
    with pytest.raises(type(error)) as info:
        await collect(
            resumable_download(
                read_from,
                path="a.bin",
                backoff=FAST,
                # an error of the source as a whole is never retried, whatever retry_on says
                retry_on=(Exception,) if isinstance(error, SourceError) else (OSError,),
                stats=stats,
            )
        )
    assert info.value is error
    assert calls == 1 and stats["resumes"] == 0


async def test_closing_the_download_closes_the_stream() -> None:
    closed = False

    async def read_from(offset: int) -> AsyncGenerator[bytes, None]:
        nonlocal closed
        try:
            while True:
                yield b"x" * 10
        finally:
            closed = True

    download = resumable_download(read_from, path="a.bin", backoff=FAST, retry_on=(OSError,))
    async with aclosing(download) as blocks:
        async for _ in blocks:
            break
    assert closed


# -- SFTP --------------------------------------------------------------------------------------
class FakeSftpFile:
    def __init__(self, server: FakeSftp) -> None:
        self.server = server

    async def __aenter__(self) -> FakeSftpFile:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    async def read(self, size: int, offset: int) -> bytes:
        server = self.server
        server.reads.append(offset)
        if server.breaks and offset >= server.breaks[0]:
            server.breaks.pop(0)
            raise asyncssh.ConnectionLost("connection lost")
        if server.error is not None:
            raise server.error
        return server.data[offset : offset + min(size, 3000)]


class FakeSftp:
    def __init__(self, data: bytes, breaks: list[int], error: Exception | None = None) -> None:
        self.data = data
        self.breaks = breaks
        self.error = error
        self.reads: list[int] = []
        self.sessions = 0

    def open(self, remote: str, mode: str, **kw: object) -> FakeSftpFile:
        assert remote == "/in/big.bin" and mode == "rb"
        return FakeSftpFile(self)


def sftp_source(fake: FakeSftp) -> SftpSource:
    settings = SftpSettings(
        host="sftp.invalid", username="u", password=SecretStr("p"), root="/in", backoff=FAST
    )
    src = SftpSource("files", "acme", settings)

    async def session() -> Any:
        fake.sessions += 1
        return fake

    src._session = session  # type: ignore[method-assign]
    return src


ENTRY = SourceEntry(path="big.bin", size=len(DATA), mtime=1.0)


async def test_sftp_resumes_after_a_lost_connection() -> None:
    fake = FakeSftp(DATA, [3000, 6000])
    src = sftp_source(fake)
    assert await collect(src.fetch(ENTRY)) == DATA
    assert fake.sessions == 3  # a fresh session after each loss
    assert src.stats["resumes"] == 2 and src.stats["OPEN"] == 3
    assert fake.reads == [0, 3000, 3000, 6000, 6000, 9000, 10_000]
    assert src.stats["READ"] == len(fake.reads)


async def test_sftp_gives_up_after_the_attempts() -> None:
    fake = FakeSftp(DATA, [3000, 3000, 3000])
    src = sftp_source(fake)
    with pytest.raises(TransientError) as info:
        await collect(src.fetch(ENTRY))
    assert str(info.value) == (
        "download of big.bin failed after 3 attempts at byte 3000: ConnectionLost: connection lost"
    )
    assert src.stats["resumes"] == 2


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (asyncssh.SFTPNoSuchFile("no such file"), "vanished"),
        (asyncssh.SFTPPermissionDenied("denied"), "unreadable"),
        (asyncssh.SFTPFailure("failure"), "sftp_error"),
    ],
)
async def test_sftp_errors_are_permanent(error: Exception, code: str) -> None:
    src = sftp_source(FakeSftp(DATA, [], error=error))
    with pytest.raises(PermanentError) as info:
        await collect(src.fetch(ENTRY))
    assert info.value.code == code and str(info.value) == f"big.bin: {error.reason}"  # type: ignore[attr-defined]
    assert info.value.__cause__ is error and src.stats["resumes"] == 0


# -- S3 ----------------------------------------------------------------------------------------
class FakeBody:
    def __init__(self, data: bytes, stop: int | None) -> None:
        self.data = data
        self.stop = stop
        self.pos = 0

    async def __aenter__(self) -> FakeBody:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    async def read(self, n: int) -> bytes:
        if self.stop is not None and self.pos >= self.stop:
            raise OSError("connection reset")
        chunk = self.data[self.pos : self.pos + min(n, 2000)]
        self.pos += len(chunk)
        return chunk


class FakeS3:
    def __init__(self, data: bytes, breaks: list[int], error: str | None = None) -> None:
        self.data = data
        self.breaks = breaks
        self.error = error
        self.calls: list[dict[str, str]] = []

    async def get_object(self, **args: str) -> dict[str, Any]:
        self.calls.append(args)
        if self.error is not None:
            raise ClientError({"Error": {"Code": self.error, "Message": "no"}}, "GetObject")
        start = int(args["Range"].removeprefix("bytes=").rstrip("-")) if "Range" in args else 0
        return {"Body": FakeBody(self.data[start:], self.breaks.pop(0) if self.breaks else None)}


class FakeClients:
    def __init__(self, s3: FakeS3) -> None:
        self.s3 = s3

    async def client(self, service: str) -> FakeS3:
        assert service == "s3"
        return self.s3

    async def close(self) -> None:
        return None


def s3_source(fake: FakeS3) -> S3Source:
    settings = S3Settings(bucket="landing", prefix="in/", backoff=FAST)
    return S3Source("files", "acme", settings, clients=FakeClients(fake))  # type: ignore[arg-type]


S3_ENTRY = SourceEntry(path="big.bin", size=len(DATA), mtime=1.0, etag="abc")


async def test_s3_resumes_with_a_range_pinned_to_the_etag() -> None:
    fake = FakeS3(DATA, [4000, 2000])
    src = s3_source(fake)
    assert await collect(src.fetch(S3_ENTRY)) == DATA
    assert fake.calls == [
        {"Bucket": "landing", "Key": "in/big.bin", "IfMatch": '"abc"'},
        {"Bucket": "landing", "Key": "in/big.bin", "IfMatch": '"abc"', "Range": "bytes=4000-"},
        {"Bucket": "landing", "Key": "in/big.bin", "IfMatch": '"abc"', "Range": "bytes=6000-"},
    ]
    assert src.stats["resumes"] == 2 and src.stats["GetObject"] == 3


async def test_s3_gives_up_after_the_attempts() -> None:
    src = s3_source(FakeS3(DATA, [0, 0, 0]))
    with pytest.raises(TransientError) as info:
        await collect(src.fetch(S3_ENTRY))
    assert str(info.value) == (
        "download of big.bin failed after 3 attempts at byte 0: OSError: connection reset"
    )
    assert src.stats["resumes"] == 2 and src.stats["GetObject"] == 3


@pytest.mark.parametrize(
    ("code", "error", "attempts"),
    [
        ("NoSuchKey", "vanished", 1),
        ("PreconditionFailed", "changed_during_fetch", 1),
        ("AccessDenied", "auth_failed", 1),
        ("SlowDown", None, 3),  # any other error of S3 is worth a retry
    ],
)
async def test_s3_error_classification(code: str, error: str | None, attempts: int) -> None:
    fake = FakeS3(DATA, [], error=code)
    src = s3_source(fake)
    with pytest.raises((PermanentError, TransientError)) as info:
        await collect(src.fetch(S3_ENTRY))
    if error is None:
        assert isinstance(info.value, TransientError)
    else:
        assert isinstance(info.value, PermanentError) and info.value.code == error
        assert isinstance(info.value, SourceAuthError) == (error == "auth_failed")
    assert isinstance(info.value.__cause__, ClientError)
    assert len(fake.calls) == attempts
