"""The answer cache and the index generation that invalidates it.

A cached answer is keyed by tenant, the principal's audience (the groups whose documents it may
see: two readers who see different documents never share an answer), the normalised question
(and conversation), the filters, k, the provider chain and the tenant's *index generation*.
The generation changes whenever any of the tenant's documents is indexed, deleted or given
another audience (``set_groups`` moves the record's ``updated_at``): it is the most recent
INDEXED or DELETED registry record of the tenant (registries return ``find`` newest update
first), re-read at most every ``probe_s`` per tenant, and bumped at once in-process by
``bump`` (a gateway that indexes itself, as ``datatorag up`` does, need not wait for the
probe). Entries also expire after ``ttl_s``, and the least recently used go first when the
cache is full.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from datatorag.answering import metrics
from datatorag.answering.text import normalise
from datatorag.domain.models import DocumentStatus
from datatorag.ports import Registry

T = TypeVar("T")


class IndexGenerations:
    def __init__(
        self,
        registry: Registry | None,
        *,
        probe_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.probe_s = probe_s
        self.clock = clock
        self._seen: dict[str, tuple[float, str]] = {}
        self._local: dict[str, int] = {}

    def bump(self, tenant: str) -> None:
        self._local[tenant] = self._local.get(tenant, 0) + 1

    async def current(self, tenant: str) -> str:
        local = self._local.get(tenant, 0)
        if self.registry is None:
            return f"local:{local}"
        now = self.clock()
        seen = self._seen.get(tenant)
        if seen is None or now - seen[0] >= self.probe_s:
            latest = await self.registry.find(
                tenant=tenant,
                status=[DocumentStatus.INDEXED, DocumentStatus.DELETED],
                all_versions=True,
                limit=1,
            )
            mark = (
                f"{latest[0].doc_id}:{latest[0].version}:{latest[0].status.value}:"
                f"{latest[0].updated_at.isoformat()}"
                if latest
                else "empty"
            )
            seen = (now, mark)
            self._seen[tenant] = seen
        return f"{seen[1]}|{local}"


def cache_key(
    tenant: str,
    question: str,
    *,
    audience: frozenset[str] | None,
    history: list[tuple[str, str]],
    filters: dict[str, Any] | None,
    k: int,
    chain: list[str],
    generation: str,
) -> str:
    payload = {
        "a": None if audience is None else sorted(audience),  # None: an admin's (all)
        "q": normalise(question).rstrip("?.! "),
        "h": [(role, normalise(text)) for role, text in history],
        "f": filters or {},
        "k": k,
        "p": chain,
        "g": generation,
    }
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
    return f"{tenant}\x00{digest}"  # the tenant in clear: entries of two tenants never collide


@dataclass
class _Entry(Generic[T]):
    value: T
    expires: float


class AnswerCache(Generic[T]):
    def __init__(
        self,
        max_entries: int = 2048,
        ttl_s: float = 3600.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self.clock = clock
        self._entries: OrderedDict[str, _Entry[T]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.max_entries > 0

    def get(self, key: str) -> T | None:
        if not self.enabled:
            return None
        entry = self._entries.get(key)
        if entry is not None and entry.expires <= self.clock():
            del self._entries[key]
            entry = None
        if entry is None:
            self.misses += 1
            metrics.CACHE.labels("miss").inc()
        else:
            self._entries.move_to_end(key)
            self.hits += 1
            metrics.CACHE.labels("hit").inc()
        metrics.CACHE_HIT_RATIO.set(self.hit_ratio)
        return None if entry is None else entry.value

    def put(self, key: str, value: T) -> None:
        if not self.enabled:
            return
        self._entries[key] = _Entry(value, self.clock() + self.ttl_s)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        metrics.CACHE_ENTRIES.set(len(self._entries))

    @property
    def hit_ratio(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def __len__(self) -> int:
        return len(self._entries)
