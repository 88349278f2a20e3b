"""Downloads of the sync, spooled: one entry's bytes streamed from its source into a temporary
file (in memory up to a size, on disk beyond), hashed on the way, then stored in the blob store.

The download is checked as it arrives: over the size limit, growing beyond the listed size, empty,
shorter than listed or (re-stat after the download) modified meanwhile each end it with a
``PermanentError`` of a precise code, which the sync records as a failed version.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import AsyncIterator
from typing import IO, NamedTuple

from datatorag.connectors.base import Source, SourceEntry, closing_stream
from datatorag.domain.errors import PermanentError
from datatorag.ports.blobstore import BlobStore

CHUNK = 1 << 20


class Spooled(NamedTuple):
    """A downloaded entry: its bytes (at position 0), their SHA-256 and their count.

    The caller owns ``file`` and closes it (``with spooled.file``).
    """

    file: IO[bytes]
    sha256: str
    size: int


async def spool_download(
    source: Source,
    entry: SourceEntry,
    *,
    max_bytes: int,
    memory_bytes: int,
    verify_after_fetch: bool = True,
) -> Spooled:
    """Download ``entry`` into a temporary file, hashing and checking it on the way."""
    # handed to the caller, who closes it (``with spooled.file``)
    spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=memory_bytes)  # noqa: SIM115
    try:
        digest = hashlib.sha256()
        size = 0
        async with closing_stream(source.fetch(entry)) as chunks:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise PermanentError(
                        f"download exceeded the limit of {max_bytes} bytes", code="too_large"
                    )
                if entry.size is not None and size > entry.size:
                    raise PermanentError(
                        f"grew beyond the listed {entry.size} bytes while downloading",
                        code="changed_during_fetch",
                    )
                digest.update(chunk)
                spool.write(chunk)
        if size == 0:
            raise PermanentError("the file is empty (0 bytes)", code="empty_file")
        if entry.size is not None and size != entry.size:
            raise PermanentError(
                f"listed as {entry.size} bytes but {size} arrived: changed while downloading",
                code="changed_during_fetch",
            )
        if verify_after_fetch:
            after = await source.stat(entry)
            if after is not None and changed_since_listing(entry, after):
                raise PermanentError("modified while downloading", code="changed_during_fetch")
        spool.seek(0)
        return Spooled(spool, digest.hexdigest(), size)
    except BaseException:
        spool.close()
        raise


def changed_since_listing(entry: SourceEntry, after: SourceEntry) -> bool:
    """Whether the hints re-read after a download (``after``) contradict the listed ones; a hint
    that either side lacks is not compared."""
    return (
        (after.size is not None and entry.size is not None and after.size != entry.size)
        or (
            after.mtime is not None
            and entry.mtime is not None
            and abs(after.mtime - entry.mtime) > 1e-6
        )
        or (after.etag is not None and entry.etag is not None and after.etag != entry.etag)
    )


async def put_spooled(
    blobstore: BlobStore,
    key: str,
    spooled: Spooled,
    *,
    memory_bytes: int,
    metadata: dict[str, str],
    content_type: str | None,
) -> None:
    """Store a download under ``key``: in one ``put`` when it fits in memory, else streamed."""
    if spooled.size <= memory_bytes:
        await blobstore.put(key, spooled.file.read(), metadata=metadata, content_type=content_type)
    else:
        await blobstore.put_stream(
            key, read_chunks(spooled.file), metadata=metadata, content_type=content_type
        )


async def read_chunks(file: IO[bytes]) -> AsyncIterator[bytes]:
    """``file`` from its position to its end, in chunks of ``CHUNK`` bytes."""
    while data := file.read(CHUNK):
        yield data
