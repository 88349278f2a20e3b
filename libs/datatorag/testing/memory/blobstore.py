"""``BlobStore`` in memory: a dict of key -> (bytes, metadata, content type).

A ``put`` replaces the whole entry in one step and ``put_stream`` commits only once its stream
has ended, so a reader sees the old object, the new one or none (a failed stream leaves the old
one). Keys follow S3's rules (a non-empty string of at most 1024 UTF-8 bytes, no NUL); metadata
keys are lower-case ASCII and values ASCII, as the port requires.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from datatorag.domain.errors import NotFound
from datatorag.ports.blobstore import BlobInfo, BlobStore

_MAX_KEY_BYTES = 1024
_META_KEY = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


@dataclass(frozen=True)
class _Blob:
    data: bytes
    metadata: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None


def _check_key(key: str) -> str:
    if not isinstance(key, str) or not key:
        raise ValueError("blob key must be a non-empty string")
    if "\x00" in key:
        raise ValueError(f"blob key contains NUL: {key!r}")
    if len(key.encode("utf-8", "surrogatepass")) > _MAX_KEY_BYTES:
        raise ValueError(f"blob key longer than {_MAX_KEY_BYTES} bytes")
    return key


def _check_metadata(metadata: dict[str, str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in (metadata or {}).items():
        if not isinstance(k, str) or not _META_KEY.match(k):
            raise ValueError(f"metadata key must be lower-case ASCII [a-z0-9_.-], got {k!r}")
        if not isinstance(v, str) or not v.isascii():
            raise ValueError(f"metadata value for {k!r} must be an ASCII string, got {v!r}")
        out[k] = v
    return out


class MemoryBlobStore(BlobStore):
    def __init__(self) -> None:
        self._blobs: dict[str, _Blob] = {}

    # -- writing ---------------------------------------------------------------------------
    async def put(
        self,
        key: str,
        data: bytes,
        *,
        metadata: dict[str, str] | None = None,
        content_type: str | None = None,
    ) -> None:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"data must be bytes, got {type(data).__name__}")
        blob = _Blob(bytes(data), _check_metadata(metadata), content_type)
        _check_key(key)
        await asyncio.sleep(0)
        self._blobs[key] = blob

    async def put_stream(
        self,
        key: str,
        stream: AsyncIterator[bytes],
        *,
        metadata: dict[str, str] | None = None,
        content_type: str | None = None,
    ) -> int:
        meta = _check_metadata(metadata)
        _check_key(key)
        pieces = [bytes(piece) async for piece in stream]  # nothing is stored if this raises
        data = b"".join(pieces)
        await asyncio.sleep(0)
        self._blobs[key] = _Blob(data, meta, content_type)
        return len(data)

    async def delete(self, key: str) -> None:
        _check_key(key)
        await asyncio.sleep(0)
        self._blobs.pop(key, None)

    # -- reading ---------------------------------------------------------------------------
    def _blob(self, key: str) -> _Blob:
        blob = self._blobs.get(_check_key(key))
        if blob is None:
            raise NotFound(f"blob {key!r} not found")
        return blob

    async def get(self, key: str) -> bytes:
        await asyncio.sleep(0)
        return self._blob(key).data

    async def open(self, key: str, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        await asyncio.sleep(0)
        data = self._blob(key).data  # the object as it was when the read started
        for start in range(0, len(data), chunk_size):
            yield data[start : start + chunk_size]
            await asyncio.sleep(0)

    async def head(self, key: str) -> BlobInfo:
        await asyncio.sleep(0)
        blob = self._blob(key)
        return BlobInfo(
            key=key,
            size=len(blob.data),
            metadata=dict(blob.metadata),
            content_type=blob.content_type,
        )

    async def exists(self, key: str) -> bool:
        await asyncio.sleep(0)
        return _check_key(key) in self._blobs

    async def list(self, prefix: str = "") -> AsyncIterator[str]:
        await asyncio.sleep(0)
        for key in sorted(k for k in self._blobs if k.startswith(prefix)):
            yield key

    async def check(self) -> None:
        await asyncio.sleep(0)
