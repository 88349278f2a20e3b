"""Blob store port: raw documents, chunk sets and embedded records, addressed by key."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

# where ``check()`` writes its probe object, when the store needs a key for one
PROBE_PREFIX = "_readyz/"


@dataclass(frozen=True)
class BlobInfo:
    key: str
    size: int
    metadata: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None


class BlobStore(abc.ABC):
    """Contract (``datatorag.testing.conformance.blobstore``):

    * ``put`` is atomic: a reader sees the old object, the new one, or none, never a torn write.
    * ``put_stream`` writes an object of unknown size from an async iterator of bytes (large files).
    * ``get`` / ``open`` / ``head`` raise ``datatorag.domain.errors.NotFound`` for a missing key.
    * ``metadata`` round-trips (keys lower-case ASCII, values ASCII).
    * ``list(prefix)`` yields keys in lexicographic order.
    * ``delete`` of a missing key is a no-op.
    * ``check`` exercises the write path (it writes and deletes a probe object, under
      ``PROBE_PREFIX`` where it needs a key) and leaves nothing behind; a full disk raises
      ``InsufficientStorage``, any other failure ``DependencyError``.
    """

    @abc.abstractmethod
    async def put(
        self,
        key: str,
        data: bytes,
        *,
        metadata: dict[str, str] | None = None,
        content_type: str | None = None,
    ) -> None: ...

    @abc.abstractmethod
    async def put_stream(
        self,
        key: str,
        stream: AsyncIterator[bytes],
        *,
        metadata: dict[str, str] | None = None,
        content_type: str | None = None,
    ) -> int:
        """Store the stream; returns the number of bytes written."""

    @abc.abstractmethod
    async def get(self, key: str) -> bytes: ...

    @abc.abstractmethod
    def open(self, key: str, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        """Stream an object's bytes."""

    @abc.abstractmethod
    async def head(self, key: str) -> BlobInfo: ...

    @abc.abstractmethod
    async def exists(self, key: str) -> bool: ...

    @abc.abstractmethod
    async def delete(self, key: str) -> None: ...

    @abc.abstractmethod
    def list(self, prefix: str = "") -> AsyncIterator[str]: ...

    @abc.abstractmethod
    async def check(self) -> None:
        """Raise ``DependencyError`` when the bucket/dir is missing, unreachable or refuses a
        write (see the class docstring)."""

    async def close(self) -> None:
        pass
