"""A local directory as a source (embedded mode, mounted volumes, tests).

The walk reads names as bytes so a name that is not UTF-8 reaches the sync engine (as
``surrogateescape``) and is recorded as a failure instead of crashing ``os.walk``. Symbolic links
are not followed unless asked, and a followed link must still resolve inside the root.
"""

from __future__ import annotations

import asyncio
import os
import stat as stat_mod
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from datatorag.connectors.audience import parse_sidecar, sidecar_path
from datatorag.connectors.base import Source, SourceEntry, SourceUnavailable
from datatorag.connectors.paths import check_path, matches
from datatorag.domain.errors import PermanentError

_CHUNK = 1 << 20


def _read(path: bytes) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(1 << 16)


def _decode(name: bytes) -> str:
    return name.decode("utf-8", "surrogateescape")


class FolderSource(Source):
    kind = "folder"

    def __init__(
        self,
        id: str,
        tenant: str,
        root: str | Path,
        *,
        include: Sequence[str] = ("*",),
        exclude: Sequence[str] = (),
        follow_symlinks: bool = False,
        include_hidden: bool = False,
        max_concurrency: int = 4,
        upload_audience: bool = False,
    ) -> None:
        super().__init__(id, tenant, max_concurrency=max_concurrency)
        self.root = Path(root)
        self.include = tuple(include)
        self.exclude = tuple(exclude)
        self.follow_symlinks = follow_symlinks
        # dot-files: editor/OS droppings and in-progress uploads (".name.part"), not documents
        self.include_hidden = include_hidden
        self.upload_audience = upload_audience  # the landing zone's sidecars (the uploads source)

    def _scan(self, rel: bytes) -> list[tuple[bytes, bool, int, float]]:
        """One directory: (relative name, is_dir, size, mtime) of its files and subdirectories."""
        base = os.path.join(os.fsencode(self.root), rel) if rel else os.fsencode(self.root)
        out: list[tuple[bytes, bool, int, float]] = []
        with os.scandir(base) as it:
            for d in it:
                if d.name.startswith(b".") and not self.include_hidden:
                    continue
                name = os.path.join(rel, d.name) if rel else d.name
                try:
                    if d.is_symlink() and not self.follow_symlinks:
                        continue
                    st = d.stat(follow_symlinks=self.follow_symlinks)
                except OSError:
                    continue  # vanished between readdir and stat, or a dangling link
                if d.is_symlink() and not self._inside_root(d.path):
                    continue
                if stat_mod.S_ISDIR(st.st_mode):
                    out.append((name, True, 0, st.st_mtime))
                elif stat_mod.S_ISREG(st.st_mode):
                    out.append((name, False, st.st_size, st.st_mtime))
        return out

    def _inside_root(self, path: bytes) -> bool:
        root = os.path.realpath(os.fsencode(self.root))
        real = os.path.realpath(path)
        return real == root or real.startswith(root + b"/")

    async def list(self) -> AsyncIterator[SourceEntry]:
        if not self.root.is_dir():
            raise SourceUnavailable(
                f"folder {self.root} does not exist or is not a directory", code="not_found"
            )
        pending: list[bytes] = [b""]
        seen_dirs: set[bytes] = set()
        while pending:
            rel = pending.pop()
            try:
                items = await asyncio.to_thread(self._scan, rel)
            except OSError as exc:
                if not rel:
                    raise SourceUnavailable(f"cannot list {self.root}: {exc}") from exc
                continue  # an unreadable subdirectory is skipped, not fatal
            for name, is_dir, size, mtime in sorted(items):
                if is_dir:
                    if self.follow_symlinks:  # guard against link cycles
                        full = os.path.join(os.fsencode(self.root), name)
                        real = await asyncio.to_thread(os.path.realpath, full)
                        if real in seen_dirs:
                            continue
                        seen_dirs.add(real)
                    pending.append(name)
                    continue
                path = _decode(name)
                if matches(path, self.include, self.exclude):
                    yield SourceEntry(path=path, size=size, mtime=mtime)

    def _resolve(self, entry: SourceEntry) -> bytes:
        check_path(entry.path)  # never open anything outside the root, whoever built the entry
        full = os.path.join(os.fsencode(self.root), entry.path.encode("utf-8", "surrogateescape"))
        if not self._inside_root(full):
            raise PermanentError(
                f"{entry.path} resolves outside the source root", code="path_traversal"
            )
        return full

    async def fetch(self, entry: SourceEntry) -> AsyncIterator[bytes]:
        full = self._resolve(entry)
        try:
            fh = await asyncio.to_thread(open, full, "rb")
        except FileNotFoundError as exc:
            raise PermanentError(f"{entry.path} vanished before download", code="vanished") from exc
        except OSError as exc:
            raise PermanentError(
                f"cannot open {entry.path}: {exc.strerror}", code="unreadable"
            ) from exc
        try:
            while chunk := await asyncio.to_thread(fh.read, _CHUNK):
                yield chunk
        finally:
            fh.close()

    async def sidecar_audience(self, entry: SourceEntry) -> tuple[str, ...] | None:
        if not self.upload_audience:
            return None
        full = self._resolve(SourceEntry(path=sidecar_path(entry.path), size=None, mtime=None))
        try:
            data = await asyncio.to_thread(_read, full)
        except FileNotFoundError:
            return None  # not an upload (or from before audiences): the rules decide
        return parse_sidecar(data)

    async def stat(self, entry: SourceEntry) -> SourceEntry | None:
        try:
            st = await asyncio.to_thread(os.stat, self._resolve(entry))
        except OSError:
            return None
        return SourceEntry(path=entry.path, size=st.st_size, mtime=st.st_mtime)
