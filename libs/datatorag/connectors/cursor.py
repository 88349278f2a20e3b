"""Small per-source sync state that does not belong in the document registry.

It holds the deletion grace bookkeeping (when a document was first seen missing, when its
tombstone was sent) and change hints of files whose bytes did not change although their
size/mtime did (a ``touch``), so those are not downloaded again at every sync. The state is a
JSON document per source; losing it costs at most one extra download per touched file and one
restarted grace period.
"""

from __future__ import annotations

import abc
import json
from typing import Any

from datatorag.domain.errors import NotFound
from datatorag.domain.keys import slug
from datatorag.ports.blobstore import BlobStore

State = dict[str, Any]


class CursorStore(abc.ABC):
    @abc.abstractmethod
    async def load(self, tenant: str, source: str) -> State: ...

    @abc.abstractmethod
    async def save(self, tenant: str, source: str, state: State) -> None: ...


class BlobCursorStore(CursorStore):
    """State as ``state/{tenant}/{source}/sync-state.json`` in the blob store (works in both modes;
    the sync lease guarantees a single writer per source)."""

    def __init__(self, blobstore: BlobStore, prefix: str = "state") -> None:
        self.blobstore = blobstore
        self.prefix = prefix

    def key(self, tenant: str, source: str) -> str:
        return f"{self.prefix}/{slug(tenant)}/{slug(source, 128)}/sync-state.json"

    async def load(self, tenant: str, source: str) -> State:
        try:
            raw = await self.blobstore.get(self.key(tenant, source))
        except NotFound:
            return {}
        try:
            state = json.loads(raw)
        except ValueError:
            return {}  # a corrupt state file only costs a restarted grace period
        return state if isinstance(state, dict) else {}

    async def save(self, tenant: str, source: str, state: State) -> None:
        data = json.dumps(state, separators=(",", ":"), sort_keys=True).encode()
        await self.blobstore.put(self.key(tenant, source), data, content_type="application/json")


class MemoryCursorStore(CursorStore):
    """Process-local state (tests and one-shot runs)."""

    def __init__(self) -> None:
        self._states: dict[tuple[str, str], str] = {}

    async def load(self, tenant: str, source: str) -> State:
        raw = self._states.get((tenant, source))
        return json.loads(raw) if raw else {}

    async def save(self, tenant: str, source: str, state: State) -> None:
        self._states[(tenant, source)] = json.dumps(state)
