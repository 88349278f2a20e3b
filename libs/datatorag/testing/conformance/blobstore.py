"""Conformance suite of the ``BlobStore`` port (``datatorag.ports.blobstore``).

Reuse it for any adapter, in this repository or outside it: write a test module that star-imports
this module and provides a fixture named ``blobstore`` yielding the adapter under test (and
closing it afterwards)::

    import pytest

    from datatorag.testing.conformance.blobstore import *  # noqa: F403

    @pytest.fixture
    async def blobstore(tmp_path):
        adapter = MyBlobStore(...)
        yield adapter
        await adapter.close()

pytest collects the imported test functions as if they were written in that module. ``__all__``
lists every test function of the suite, the fixture it defines itself (``prefix``) and
``pytestmark`` (its timeout: pytest reads marks from the test module, so the star-import carries
them along); the helpers stay private. The tests are ``async def`` and need pytest-asyncio
(``asyncio_mode = "auto"``, or add ``pytest.mark.asyncio`` to your module's ``pytestmark``) and
pytest-timeout.

Every test writes under its own random prefix, so adapters backed by a shared bucket work too.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import pytest

from datatorag.domain.errors import NotFound
from datatorag.ports import BlobStore
from datatorag.ports.blobstore import PROBE_PREFIX

__all__ = [
    "prefix",
    "pytestmark",
    "test_check_passes",
    "test_check_writes_and_leaves_no_probe_behind",
    "test_delete_and_delete_missing",
    "test_empty_object",
    "test_failed_put_stream_leaves_old_object",
    "test_head_returns_size_metadata_and_content_type",
    "test_head_without_metadata",
    "test_list_excludes_deleted_keys",
    "test_list_is_lexicographic_and_filtered_by_prefix",
    "test_missing_key_raises_not_found",
    "test_open_streams_in_chunks",
    "test_put_get_round_trip",
    "test_put_is_atomic_for_concurrent_readers",
    "test_put_overwrites",
    "test_put_stream_of_small_and_empty_pieces",
    "test_put_stream_writes_all_bytes_and_metadata",
]

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def prefix() -> str:
    return f"t-{uuid.uuid4().hex[:12]}/"


async def _collect(it: AsyncIterator[bytes]) -> bytes:
    return b"".join([piece async for piece in it])


async def _keys(blobstore: BlobStore, prefix: str) -> list[str]:
    return [k async for k in blobstore.list(prefix)]


async def test_check_passes(blobstore: BlobStore) -> None:
    await blobstore.check()


async def test_check_writes_and_leaves_no_probe_behind(blobstore: BlobStore) -> None:
    await blobstore.check()
    await blobstore.check()
    assert await _keys(blobstore, PROBE_PREFIX) == []


async def test_put_get_round_trip(blobstore: BlobStore, prefix: str) -> None:
    data = os.urandom(4096) + b"\x00\xff"
    await blobstore.put(prefix + "raw/doc.pdf", data)
    assert await blobstore.get(prefix + "raw/doc.pdf") == data
    assert await blobstore.exists(prefix + "raw/doc.pdf")


async def test_empty_object(blobstore: BlobStore, prefix: str) -> None:
    await blobstore.put(prefix + "empty", b"")
    assert await blobstore.get(prefix + "empty") == b""
    assert (await blobstore.head(prefix + "empty")).size == 0


async def test_put_overwrites(blobstore: BlobStore, prefix: str) -> None:
    await blobstore.put(prefix + "k", b"old", metadata={"v": "1"})
    await blobstore.put(prefix + "k", b"newer", metadata={"v": "2"})
    assert await blobstore.get(prefix + "k") == b"newer"
    info = await blobstore.head(prefix + "k")
    assert info.size == 5 and info.metadata == {"v": "2"}


async def test_head_returns_size_metadata_and_content_type(
    blobstore: BlobStore, prefix: str
) -> None:
    meta = {"tenant": "acme", "sha256": "ab" * 32, "source-path": "/in/a b.pdf"}
    await blobstore.put(prefix + "h", b"12345", metadata=meta, content_type="application/pdf")
    info = await blobstore.head(prefix + "h")
    assert info.key == prefix + "h"
    assert info.size == 5
    assert info.metadata == meta
    assert info.content_type == "application/pdf"


async def test_head_without_metadata(blobstore: BlobStore, prefix: str) -> None:
    await blobstore.put(prefix + "plain", b"abc")
    info = await blobstore.head(prefix + "plain")
    assert info.size == 3 and info.metadata == {}


@pytest.mark.parametrize("op", ["get", "head", "open"])
async def test_missing_key_raises_not_found(blobstore: BlobStore, prefix: str, op: str) -> None:
    key = prefix + "missing/object"

    async def attempt() -> None:
        if op == "open":
            await _collect(blobstore.open(key))
        else:
            await getattr(blobstore, op)(key)

    with pytest.raises(NotFound):
        await attempt()
    assert not await blobstore.exists(key)


async def test_open_streams_in_chunks(blobstore: BlobStore, prefix: str) -> None:
    data = os.urandom(300_000)
    await blobstore.put(prefix + "big", data)
    pieces = [p async for p in blobstore.open(prefix + "big", chunk_size=65_536)]
    assert b"".join(pieces) == data
    assert len(pieces) >= 2
    assert all(len(p) <= 65_536 for p in pieces)


async def test_put_stream_writes_all_bytes_and_metadata(blobstore: BlobStore, prefix: str) -> None:
    parts = [os.urandom(1 << 20) for _ in range(6)] + [b"tail"]  # > 5 MiB: multipart on S3

    async def gen() -> AsyncIterator[bytes]:
        for p in parts:
            yield p
            await asyncio.sleep(0)

    size = await blobstore.put_stream(
        prefix + "stream", gen(), metadata={"origin": "ftp"}, content_type="text/plain"
    )
    expected = b"".join(parts)
    assert size == len(expected)
    assert await blobstore.get(prefix + "stream") == expected
    info = await blobstore.head(prefix + "stream")
    assert info.size == len(expected)
    assert info.metadata == {"origin": "ftp"}
    assert info.content_type == "text/plain"


async def test_put_stream_of_small_and_empty_pieces(blobstore: BlobStore, prefix: str) -> None:
    async def gen() -> AsyncIterator[bytes]:
        for p in (b"a", b"", b"bc", b""):
            yield p

    assert await blobstore.put_stream(prefix + "s", gen()) == 3
    assert await blobstore.get(prefix + "s") == b"abc"


async def test_failed_put_stream_leaves_old_object(blobstore: BlobStore, prefix: str) -> None:
    await blobstore.put(prefix + "k", b"original")

    async def broken() -> AsyncIterator[bytes]:
        yield b"partial"
        raise ConnectionError("source went away")

    with pytest.raises(ConnectionError):
        await blobstore.put_stream(prefix + "k", broken())
    assert await blobstore.get(prefix + "k") == b"original"
    assert await _keys(blobstore, prefix) == [prefix + "k"]


async def test_delete_and_delete_missing(blobstore: BlobStore, prefix: str) -> None:
    await blobstore.put(prefix + "a/b", b"x", metadata={"m": "1"})
    await blobstore.delete(prefix + "a/b")
    assert not await blobstore.exists(prefix + "a/b")
    with pytest.raises(NotFound):
        await blobstore.get(prefix + "a/b")
    await blobstore.delete(prefix + "a/b")  # again: no-op
    await blobstore.delete(prefix + "never/existed")
    # a re-put after delete has no stale metadata
    await blobstore.put(prefix + "a/b", b"y")
    assert (await blobstore.head(prefix + "a/b")).metadata == {}


async def test_list_is_lexicographic_and_filtered_by_prefix(
    blobstore: BlobStore, prefix: str
) -> None:
    # '-' (0x2D) < '/' (0x2F) < '0' (0x30): a directory walk would get this order wrong.
    keys = ["p/b", "p/a0", "p/a/b", "p/a-c", "p/a/a/z", "q"]
    for k in keys:
        await blobstore.put(prefix + k, k.encode())
    assert await _keys(blobstore, prefix) == sorted(prefix + k for k in keys)
    # A prefix is a string prefix, not a directory.
    assert await _keys(blobstore, prefix + "p/a") == [
        prefix + k for k in ["p/a-c", "p/a/a/z", "p/a/b", "p/a0"]
    ]
    assert await _keys(blobstore, prefix + "p/a/") == [prefix + "p/a/a/z", prefix + "p/a/b"]
    assert await _keys(blobstore, prefix + "nothing") == []


async def test_list_excludes_deleted_keys(blobstore: BlobStore, prefix: str) -> None:
    await blobstore.put(prefix + "x/1", b"1")
    await blobstore.put(prefix + "x/2", b"2")
    await blobstore.delete(prefix + "x/1")
    assert await _keys(blobstore, prefix) == [prefix + "x/2"]


async def test_put_is_atomic_for_concurrent_readers(blobstore: BlobStore, prefix: str) -> None:
    key = prefix + "atomic"
    a, b = b"A" * 1_000_000, b"B" * 1_000_000
    await blobstore.put(key, a)
    stop = asyncio.Event()

    async def writer() -> None:
        for i in range(10):
            await blobstore.put(key, b if i % 2 == 0 else a)
        stop.set()

    async def reader() -> list[bytes]:
        seen: list[bytes] = []
        while not stop.is_set():
            seen.append(await blobstore.get(key))
        return seen

    _, seen = await asyncio.gather(writer(), reader())
    assert seen, "the reader never ran"
    for data in seen:
        assert data in (a, b), "a reader saw a torn write"
