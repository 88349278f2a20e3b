"""Blob store on a local directory: ``root/<key>`` holds the bytes, ``root/.meta/<key>`` (JSON) the
metadata and content type.

Writes go to a temporary file in ``root/.tmp`` that is fsynced and then ``os.replace``d onto the
key, so a reader sees the whole old object or the whole new one. The sidecar is replaced before
the data, so a reader never sees new data with no metadata. Keys are relative POSIX paths; ``..``,
absolute paths, empty segments, backslashes and NUL are rejected with ``ValueError`` so a key can
never leave the root.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import re
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from datatorag.domain.errors import DependencyError, InsufficientStorage, NotFound
from datatorag.ports.blobstore import BlobInfo, BlobStore

_META_DIR = ".meta"
_TMP_DIR = ".tmp"
_RESERVED = {_META_DIR, _TMP_DIR}
_MAX_KEY_BYTES = 1024  # S3's limit, kept so keys stay portable
_FULL = (errno.ENOSPC, errno.EDQUOT)  # disk or quota full
_META_KEY = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


def validate_key(key: str) -> str:
    """Return ``key`` when it is a safe relative path; raise ``ValueError`` saying why not."""
    if not isinstance(key, str) or not key:
        raise ValueError("blob key must be a non-empty string")
    if "\x00" in key:
        raise ValueError(f"blob key contains NUL: {key!r}")
    if "\\" in key:
        raise ValueError(f"blob key contains a backslash: {key!r}")
    if key.startswith("/"):
        raise ValueError(f"blob key must be relative, got absolute {key!r}")
    if len(key.encode("utf-8", "surrogatepass")) > _MAX_KEY_BYTES:
        raise ValueError(f"blob key longer than {_MAX_KEY_BYTES} bytes")
    parts = key.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise ValueError(f"blob key has an empty, '.' or '..' segment: {key!r}")
    if parts[0] in _RESERVED:
        raise ValueError(f"blob key may not start with reserved {parts[0]!r}: {key!r}")
    return key


def _validate_metadata(metadata: dict[str, str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in (metadata or {}).items():
        if not isinstance(k, str) or not _META_KEY.match(k):
            raise ValueError(f"metadata key must be lower-case ASCII [a-z0-9_.-], got {k!r}")
        if not isinstance(v, str) or not v.isascii():
            raise ValueError(f"metadata value for {k!r} must be an ASCII string, got {v!r}")
        out[k] = v
    return out


class LocalBlobStore(BlobStore):
    def __init__(self, root: str | Path, *, create: bool = True) -> None:
        self.root = Path(root).resolve()
        if create:
            self.root.mkdir(parents=True, exist_ok=True)

    # -- paths -----------------------------------------------------------------------------
    def _path(self, key: str) -> Path:
        return self.root.joinpath(*validate_key(key).split("/"))

    def _meta_path(self, key: str) -> Path:
        # Same shape as the data tree, so it adds no key collisions of its own.
        return self.root.joinpath(_META_DIR, *validate_key(key).split("/"))

    def _tmp_file(self) -> tuple[int, str]:
        tmp_dir = self.root / _TMP_DIR
        tmp_dir.mkdir(parents=True, exist_ok=True)
        return tempfile.mkstemp(dir=tmp_dir, prefix="put-")

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
        meta = _validate_metadata(metadata)
        self._path(key)

        def write() -> None:
            fd, tmp = self._tmp_file()
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                self._commit(key, tmp, meta, content_type)
            except BaseException:
                _unlink(tmp)
                raise

        with self._full_disk_is_insufficient_storage():
            await asyncio.to_thread(write)

    async def put_stream(
        self,
        key: str,
        stream: AsyncIterator[bytes],
        *,
        metadata: dict[str, str] | None = None,
        content_type: str | None = None,
    ) -> int:
        meta = _validate_metadata(metadata)
        self._path(key)
        fd, tmp = await asyncio.to_thread(self._tmp_file)
        f = os.fdopen(fd, "wb")
        size = 0
        try:
            with self._full_disk_is_insufficient_storage():
                async for piece in stream:
                    if piece:
                        await asyncio.to_thread(f.write, piece)
                        size += len(piece)
                await asyncio.to_thread(_flush_close, f)
                await asyncio.to_thread(self._commit, key, tmp, meta, content_type)
        except BaseException:
            with contextlib.suppress(OSError):  # closing flushes: on a full disk, that fails too
                f.close()
            _unlink(tmp)
            raise
        return size

    @contextlib.contextmanager
    def _full_disk_is_insufficient_storage(self) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            if exc.errno in _FULL:
                raise InsufficientStorage(
                    f"cannot write: {exc.strerror}", dependency=f"blobstore:{self.root}"
                ) from exc
            raise

    def _commit(self, key: str, tmp: str, meta: dict[str, str], content_type: str | None) -> None:
        path = self._path(key)
        meta_path = self._meta_path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as exc:
            raise ValueError(f"blob key {key!r} nests under an existing object") from exc
        if path.is_dir():
            raise ValueError(f"blob key {key!r} is a prefix of existing objects")
        if meta or content_type:
            meta_path.parent.mkdir(parents=True, exist_ok=True)
            fd, meta_tmp = self._tmp_file()
            with os.fdopen(fd, "w", encoding="ascii") as f:
                json.dump({"metadata": meta, "content_type": content_type}, f)
            os.replace(meta_tmp, meta_path)
        else:
            _unlink(meta_path)
        os.replace(tmp, path)

    # -- reading ---------------------------------------------------------------------------
    async def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise NotFound(f"blob {key!r} not found") from exc

    async def open(self, key: str, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        path = self._path(key)
        try:
            f = await asyncio.to_thread(open, path, "rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise NotFound(f"blob {key!r} not found") from exc
        try:
            while piece := await asyncio.to_thread(f.read, chunk_size):
                yield piece
        finally:
            f.close()

    async def head(self, key: str) -> BlobInfo:
        path = self._path(key)
        meta_path = self._meta_path(key)

        def stat() -> BlobInfo:
            try:
                st = path.stat()
            except (FileNotFoundError, NotADirectoryError) as exc:
                raise NotFound(f"blob {key!r} not found") from exc
            if not path.is_file():
                raise NotFound(f"blob {key!r} not found")
            try:
                side = json.loads(meta_path.read_text("ascii"))
            except (FileNotFoundError, NotADirectoryError):
                side = {}
            return BlobInfo(
                key=key,
                size=st.st_size,
                metadata=side.get("metadata", {}),
                content_type=side.get("content_type"),
            )

        return await asyncio.to_thread(stat)

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._path(key).is_file)

    async def delete(self, key: str) -> None:
        path = self._path(key)
        meta_path = self._meta_path(key)

        def remove() -> None:
            _unlink(path)
            _unlink(meta_path)
            # Prune now-empty parent directories so list() and prefixes stay clean.
            for base, p in ((self.root, path), (self.root / _META_DIR, meta_path)):
                parent = p.parent
                while parent != base and base in parent.parents:
                    try:
                        parent.rmdir()
                    except OSError:
                        break
                    parent = parent.parent

        await asyncio.to_thread(remove)

    async def list(self, prefix: str = "") -> AsyncIterator[str]:
        if "\x00" in prefix or prefix.startswith("/") or ".." in prefix.split("/"):
            raise ValueError(f"invalid prefix {prefix!r}")
        # Walk only the deepest directory the prefix names, then filter and sort keys.
        head, _, _ = prefix.rpartition("/")
        if prefix.split("/", 1)[0] in _RESERVED and "/" in prefix:
            return
        start = self.root.joinpath(*head.split("/")) if head else self.root

        def collect() -> list[str]:
            keys: list[str] = []
            if not start.is_dir():
                return keys
            for dirpath, dirnames, filenames in os.walk(start):
                rel = os.path.relpath(dirpath, self.root)
                if rel == ".":
                    dirnames[:] = [d for d in dirnames if d not in _RESERVED]
                    rel = ""
                for name in filenames:
                    key = f"{rel.replace(os.sep, '/')}/{name}" if rel else name
                    if key.startswith(prefix):
                        keys.append(key)
            keys.sort()
            return keys

        for key in await asyncio.to_thread(collect):
            yield key

    async def check(self) -> None:
        """Write, fsync and delete a probe file where ``put`` writes (``root/.tmp``): a read-only
        or full disk fails here, not at the next document."""

        def probe() -> None:
            if not self.root.is_dir():
                raise FileNotFoundError("blob directory is missing")
            fd, tmp = self._tmp_file()
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(b"readiness probe")
                    f.flush()
                    os.fsync(f.fileno())
            finally:
                _unlink(tmp)

        try:
            await asyncio.to_thread(probe)
        except OSError as exc:
            if exc.errno in _FULL:
                raise InsufficientStorage(
                    f"cannot write: {exc.strerror}", dependency=f"blobstore:{self.root}"
                ) from exc
            raise DependencyError(f"blobstore:{self.root}", f"cannot write: {exc}") from exc


def _flush_close(f) -> None:  # type: ignore[no-untyped-def]
    f.flush()
    os.fsync(f.fileno())
    f.close()


def _unlink(path: str | Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
