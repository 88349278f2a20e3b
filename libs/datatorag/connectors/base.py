"""The source interface every connector implements.

A source lists entries (one per document: a file or an API record) with whatever change hints it
has (size, mtime, etag) and fetches one entry's bytes as a stream. It knows nothing about the
registry, the blob store or the queue: ``datatorag.connectors.sync`` does the rest.

Paths are source-relative POSIX paths ("dir/file.pdf"). A source yields entries exactly as the
server names them, hostile ones included (``..``, NUL, non-UTF-8 decoded with ``surrogateescape``);
the sync engine checks every path with ``datatorag.connectors.paths.check_path`` and records a bad
one as a failed document, so a source never has to decide what is safe.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol, Self, TypeVar, runtime_checkable

from datatorag.connectors.audience import AudienceRules
from datatorag.domain.errors import PermanentError, TransientError

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SourceEntry:
    """One document as listed by its source.

    ``size``/``mtime`` (seconds since the epoch) are the cheap change hints: unchanged hints mean
    the sync skips the download. ``etag`` is a stronger hint when the source has one (S3 ETag, an
    API record's version). ``record_id`` identifies an API record; when set it, not ``path``,
    determines the document id, so a renamed record keeps its id.
    """

    path: str
    size: int | None
    mtime: float | None
    etag: str | None = None
    record_id: str | None = None
    content_type: str | None = None
    title: str | None = None
    # A listing-level problem with this entry (an unparseable listing line, a directory whose
    # name cannot be descended into): the sync records it as a failed document with this code.
    error_code: str | None = None
    error: str | None = None
    # the record's own audience (an HR-API record's confidentiality fields); None: the source's
    # rules decide (``datatorag.connectors.audience``)
    groups: tuple[str, ...] | None = None

    @property
    def key(self) -> str:
        """What the document id is derived from."""
        return self.record_id if self.record_id is not None else self.path


class SourceError(Exception):
    """Mixin marking an error of the source as a whole (not of one document)."""

    code = "source_error"


class SourceUnavailable(SourceError, TransientError):
    """Unreachable server, timeouts after retries, a dropped connection: retry at the next sync."""

    code = "unavailable"

    def __init__(self, reason: str, *, code: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        if code:
            self.code = code


class SourceAuthError(SourceError, PermanentError):
    """Wrong credentials or a refused login: retrying with the same configuration cannot help."""

    code = "auth_failed"

    def __init__(self, reason: str, *, code: str | None = None) -> None:
        PermanentError.__init__(self, reason, code=code or "auth_failed")


class Source(abc.ABC):
    """A configured origin of documents for one tenant.

    ``id`` is unique per tenant and is the ``source`` of every document record and message.
    ``max_concurrency`` bounds how many documents of this source are fetched at once (a per-server
    connection limit is the source's own business on top of that).
    """

    kind: str = "abstract"
    # who sees the source's documents: the builder sets it from the sources file
    audience: AudienceRules = AudienceRules()

    def __init__(self, id: str, tenant: str, *, max_concurrency: int = 4) -> None:
        if not id or not tenant:
            raise ValueError("a source needs a non-empty id and tenant")
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        self.id = id
        self.tenant = tenant
        self.max_concurrency = max_concurrency

    @property
    def key(self) -> str:
        return f"{self.tenant}/{self.id}"

    @abc.abstractmethod
    def list(self) -> AsyncIterator[SourceEntry]:
        """Yield every current entry (implemented as ``async def list(self): ... yield``).

        Raises ``SourceUnavailable``/``SourceAuthError`` when the source cannot be listed; a sync
        whose listing fails never deletes anything.
        """

    @abc.abstractmethod
    def fetch(self, entry: SourceEntry) -> AsyncIterator[bytes]:
        """Yield the entry's bytes in chunks. Raise ``PermanentError`` (gone, refused) or
        ``TransientError`` (connection lost after retries) for a document-level failure."""

    async def sidecar_audience(self, entry: SourceEntry) -> tuple[str, ...] | None:
        """The audience an upload of ``entry`` was given (its sidecar), or None: only sources
        that receive uploads read one (``upload_audience`` in the sources file). ``ValueError``
        for an unreadable sidecar."""
        return None

    async def stat(self, entry: SourceEntry) -> SourceEntry | None:
        """Re-read the entry's hints after a download to detect a file that changed meanwhile;
        ``None`` when the entry is gone or the source cannot tell (then the size check alone
        applies)."""
        return None

    async def check(self) -> None:
        """Raise ``SourceUnavailable``/``SourceAuthError`` when the source is not usable."""
        async for _ in self.list():
            break

    async def close(self) -> None:  # noqa: B027 - optional: not every source holds connections
        """Release connections; optional."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id!r}, tenant={self.tenant!r})"


def unsafe_directory(rel: str) -> SourceEntry | None:
    """A remote directory whose name is unsafe: reported as a failed entry, never descended into.
    ``None`` when the name is safe."""
    from datatorag.connectors.paths import UnsafePath, check_path

    try:
        check_path(rel)
    except UnsafePath as exc:
        return SourceEntry(
            path=rel,
            size=None,
            mtime=None,
            error_code=exc.code,
            error=f"directory not descended into: {exc.reason}",
        )
    return None


@runtime_checkable
class _SupportsAclose(Protocol):
    async def aclose(self) -> None: ...


@asynccontextmanager
async def closing_stream(stream: AsyncIterator[T]) -> AsyncIterator[AsyncIterator[T]]:
    """``contextlib.aclosing`` for what ``Source.list``/``Source.fetch`` return: an async
    generator in practice (its ``aclose`` runs at the end, so a stream abandoned part-way releases
    its connection at once), typed as the async iterator the interface promises."""
    try:
        yield stream
    finally:
        if isinstance(stream, _SupportsAclose):
            await stream.aclose()
