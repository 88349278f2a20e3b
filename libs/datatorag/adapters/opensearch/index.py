"""Vector index on OpenSearch (production): HNSW k-NN with efficient filtering, BM25, bulk upserts.

* One index per embedding model and dimension (``datatorag-chunks-<model>-<dim>-v<n>``), created
  from an index template, behind the alias ``datatorag-chunks-<model>`` that every read and write
  goes through. A model or dimension change is a blue/green rebuild: ``create_index`` a new
  revision, fill it (an adapter with ``target=`` that index), then ``swap_alias`` atomically.
* ``upsert`` sends ``helpers.async_bulk`` requests (two in flight for large batches) with a
  deterministic ``_id`` (tenant + chunk id), so a redelivered batch overwrites itself; then an
  explicit refresh, so "searchable when upsert returns" holds. Concurrent upserts share
  refreshes (group commit: one refresh started after a bulk finished covers every bulk finished
  before it), which keeps refreshes and small segments few.
  ``refresh="wait_for"`` on each bulk request would instead wait up to ``refresh_interval``.
* The tenant, the principal's audience and ``SearchFilters`` go inside the ``knn`` clause's
  ``filter`` (efficient filtering: Lucene/Faiss search only matching documents) and the BM25
  bool filter, never in a ``post_filter``.
* Audiences: ``groups`` is a keyword array. ``ensure`` adds it to the mapping of an index created
  before audiences (an additive mapping change); chunks written before have no ``groups`` and
  count as ``everyone``'s in the query, so nothing needs reindexing. ``set_groups`` is an
  ``update_by_query`` (a painless script on ``_source.groups``): the vectors stay.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import numpy as np
from opensearchpy import AsyncOpenSearch
from opensearchpy import exceptions as osx
from opensearchpy.helpers import async_bulk

from datatorag.adapters.opensearch import mapping as m
from datatorag.adapters.opensearch.client import error_type, make_client, translate_errors
from datatorag.config import OpenSearchSettings, Settings
from datatorag.domain.audience import normalise_groups
from datatorag.domain.errors import DependencyError
from datatorag.domain.models import ChunkRecord, SearchFilters, SearchHit
from datatorag.ports.vector_index import IndexAdmin, VectorIndex

_PAGE = 1000  # get_chunks page size (search_after)
_CHECK_TIMEOUT_S = 5


class _GroupRefresh:
    """Coalesces refresh requests: a caller waits for the next refresh that *starts* after it
    asked (its writes are then visible); everyone who asks while one runs shares the next one."""

    def __init__(self, refresh: Callable[[], Awaitable[Any]]) -> None:
        self._refresh = refresh
        self._next: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None

    async def __call__(self) -> None:
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
        waiter = self._next
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        await asyncio.shield(waiter)

    async def _run(self) -> None:
        try:
            while self._next is not None:
                batch, self._next = self._next, None
                try:
                    await self._refresh()
                except asyncio.CancelledError:
                    batch.cancel()
                    raise
                except Exception as exc:  # noqa: BLE001 - handed to every waiter of this refresh
                    batch.set_exception(exc)
                else:
                    batch.set_result(None)
        finally:
            if self._next is not None:  # cancelled with callers still queued
                self._next.cancel()
                self._next = None
            self._task = None


class OpenSearchIndex(VectorIndex):
    def __init__(
        self,
        settings: OpenSearchSettings,
        *,
        model_id: str,
        dim: int,
        client: AsyncOpenSearch | None = None,
        target: str | None = None,
        shards: int | None = None,
        replicas: int | None = None,
        refresh: bool = True,
        bulk_chunk_size: int = 500,
        bulk_max_bytes: int = 8 * 1024 * 1024,  # under the 10 MiB request cap of small AWS domains
        bulk_concurrency: int = 2,
        refresh_interval: str | None = None,
    ) -> None:
        """``target``: a concrete index to read/write instead of the alias (to fill a new revision
        before ``swap_alias``). ``refresh=False`` skips the refresh after ``upsert`` and
        ``delete_document`` (bulk loads that refresh once at the end via ``refresh()``).
        ``bulk_concurrency``: bulk requests in flight for one large ``upsert``."""
        self.settings = settings
        self.model_id = model_id
        self.dim = m.check_dim(dim)
        self.alias = m.alias_name(settings.index_prefix, model_id)
        self.pattern_base = m.index_pattern_base(settings.index_prefix, model_id, dim)
        self.template_name = self.pattern_base.removesuffix("-v")
        self.target = target or self.alias
        self._body = m.index_body(
            model_id=model_id,
            dim=dim,
            engine=settings.engine,
            ef_construction=settings.ef_construction,
            m=settings.m,
            shards=shards,
            replicas=replicas,
            refresh_interval=refresh_interval,
            text_analyzer=settings.text_analyzer,
        )
        self._refresh = refresh
        self._group_refresh = _GroupRefresh(lambda: self._client.indices.refresh(index=self.target))
        self._chunk_size = bulk_chunk_size
        self._max_bytes = bulk_max_bytes
        if bulk_chunk_size < 1 or bulk_concurrency < 1:
            raise ValueError("bulk_chunk_size and bulk_concurrency must be >= 1")
        self._concurrency = bulk_concurrency
        self._owns_client = client is None
        self._client = client if client is not None else make_client(settings)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, model_id: str, dim: int, **kwargs: Any
    ) -> OpenSearchIndex:
        """From the application settings (``DATATORAG_OPENSEARCH_*``)."""
        return cls(settings.opensearch, model_id=model_id, dim=dim, **kwargs)

    @property
    def client(self) -> AsyncOpenSearch:
        return self._client

    def _what(self) -> str:
        return f"opensearch:{self.target}"

    # -- lifecycle -------------------------------------------------------------------------
    async def ensure(self) -> None:
        """Template, first index and alias when missing; idempotent and safe to race."""
        with translate_errors(self._what()):
            await self._put_template()
            if self.target != self.alias:
                await self._create(self.target)
                await self._check_dims(self.target)
                await self._migrate_mapping(self.target)
                return
            if await self._client.indices.exists_alias(name=self.alias):
                await self._check_dims(self.alias)
                await self._migrate_mapping(self.alias)
                return
            first = m.index_name(self.settings.index_prefix, self.model_id, self.dim, 1)
            await self._create(first)
            await self._check_dims(first)
            await self._client.indices.put_alias(index=first, name=self.alias)

    async def _put_template(self) -> None:
        try:
            await self._client.indices.put_index_template(
                name=self.template_name, body=m.template_body(self.pattern_base, self._body)
            )
        except osx.RequestError as exc:
            analyzer = self.settings.text_analyzer
            if f"analyzer [{analyzer}] has not been configured" in str(exc):
                # a minimal distribution without the analysis-common module
                raise DependencyError(
                    self._what(),
                    f"this OpenSearch has no {analyzer!r} analyzer (the analysis-common module "
                    "is missing); install it, or set DATATORAG_OPENSEARCH_TEXT_ANALYZER=standard",
                ) from exc
            raise

    async def _migrate_mapping(self, name: str) -> None:
        """An index from before audiences: add ``groups`` (additive; a no-op when present)."""
        mappings = await self._client.indices.get_mapping(index=name)
        if all(
            m.GROUPS_FIELD in entry.get("mappings", {}).get("properties", {})
            for entry in mappings.values()
        ):
            return
        await self._client.indices.put_mapping(index=name, body=m.GROUPS_MAPPING)

    async def _create(self, index: str) -> None:
        try:
            await self._client.indices.create(index=index)  # settings/mappings: the template
        except osx.RequestError as exc:
            if error_type(exc) != "resource_already_exists_exception":
                raise

    async def _check_dims(self, name: str) -> None:
        mappings = await self._client.indices.get_mapping(index=name)
        for index, entry in mappings.items():
            dim = m.vector_dim_of(entry.get("mappings", {}))
            if dim != self.dim:
                raise DependencyError(
                    f"opensearch:{name}",
                    f"index {index} holds {dim}-d vectors, this model makes {self.dim}-d ones "
                    "(a model change needs a new index: create_index + swap_alias)",
                )

    async def create_index(self, revision: int | None = None) -> str:
        """A new concrete index for this model/dim (next free revision), alias untouched."""
        with translate_errors(self._what()):
            await self._put_template()
            if revision is None:
                existing = await self._client.indices.get(
                    index=f"{self.pattern_base}*", allow_no_indices=True, expand_wildcards="all"
                )
                revs = [
                    r
                    for r in (
                        m.revision_of(i, self.settings.index_prefix, self.model_id, self.dim)
                        for i in existing
                    )
                    if r is not None
                ]
                revision = max(revs, default=0) + 1
            name = m.index_name(self.settings.index_prefix, self.model_id, self.dim, revision)
            await self._client.indices.create(index=name)
            return name

    async def swap_alias(self, new_index: str) -> list[str]:
        """Point the alias at ``new_index`` alone, atomically; returns the indices it left (drop
        them once the new one is verified). ``new_index`` must hold this adapter's dimension."""
        with translate_errors(self._what()):
            if not await self._client.indices.exists(index=new_index):
                raise ValueError(f"index {new_index!r} does not exist")
            await self._check_dims(new_index)
            current = await self._alias_indices()
            old = [i for i in current if i != new_index]
            actions: list[dict[str, Any]] = [
                {"remove": {"index": i, "alias": self.alias}} for i in old
            ]
            actions.append({"add": {"index": new_index, "alias": self.alias}})
            await self._client.indices.update_aliases(body={"actions": actions})
            return old

    async def _alias_indices(self) -> list[str]:
        try:
            return sorted(await self._client.indices.get_alias(name=self.alias))
        except osx.NotFoundError:
            return []

    async def check(self) -> None:
        """Cluster reachable and the alias (or target index) present with our dimension."""
        try:
            await self._client.cluster.health(request_timeout=_CHECK_TIMEOUT_S)
            if self.target == self.alias:
                present = await self._client.indices.exists_alias(
                    name=self.alias, request_timeout=_CHECK_TIMEOUT_S
                )
            else:
                present = await self._client.indices.exists(
                    index=self.target, request_timeout=_CHECK_TIMEOUT_S
                )
            if not present:
                raise DependencyError(self._what(), "missing; run ensure()")
            await self._check_dims(self.target)
            # a read as a query makes one: every shard behind the alias must answer
            result = await self._client.search(
                index=self.target,
                body={"size": 1, "query": {"match_all": {}}, "_source": ["doc_id"]},
                request_timeout=_CHECK_TIMEOUT_S,
            )
            failed = int((result.get("_shards") or {}).get("failed") or 0)
            if failed:
                raise DependencyError(self._what(), f"{failed} shard(s) failed a read")
        except osx.TransportError as exc:  # includes ConnectionError
            raise DependencyError(self._what(), f"unreachable or failing: {exc}") from exc

    async def refresh(self) -> None:
        with translate_errors(self._what()):
            await self._client.indices.refresh(index=self.target)

    async def drop(self) -> None:
        """Delete every revision of this model/dim, its alias and template (tests, benchmarks)."""
        with translate_errors(self._what()):
            await self._client.indices.delete(
                index=f"{self.pattern_base}*", allow_no_indices=True, expand_wildcards="all"
            )
            await self._client.indices.delete_index_template(name=self.template_name, ignore=[404])

    async def close(self) -> None:
        if self._owns_client:
            await self._client.close()

    # -- writes ----------------------------------------------------------------------------
    def _actions(self, records: Sequence[ChunkRecord]) -> list[dict[str, Any]]:
        """Validate every record before anything is sent; last record wins per ``_id``."""
        by_id: dict[str, ChunkRecord] = {}
        for r in records:
            if r.vector is None:
                raise ValueError(f"chunk {r.id!r} has no vector")
            if len(r.vector) != self.dim:
                raise ValueError(
                    f"chunk {r.id!r} has a {len(r.vector)}-d vector, index is {self.dim}-d"
                )
            by_id[m.doc_id_for(r)] = r
        vectors = np.asarray([r.vector for r in by_id.values()], dtype=np.float32)
        if not np.isfinite(vectors).all():
            raise ValueError("vectors must be finite")
        return [
            {"_id": _id, "_source": m.to_source(r, vectors[i])}
            for i, (_id, r) in enumerate(by_id.items())
        ]

    async def upsert(self, records: Sequence[ChunkRecord]) -> int:
        if not records:
            return 0
        actions = self._actions(records)
        # large upserts: a few bulk requests in flight keep the node's write threads busy
        # while the client serializes the next request
        parts = max(1, min(self._concurrency, -(-len(actions) // self._chunk_size)))
        size = -(-len(actions) // parts)
        with translate_errors(self._what()):
            results = await asyncio.gather(
                *(self._bulk(actions[i : i + size]) for i in range(0, len(actions), size)),
                return_exceptions=True,
            )
            for result in results:  # every part ran to its end (they are idempotent)
                if isinstance(result, BaseException):
                    raise result
            if self._refresh:
                await self._group_refresh()
        return len(actions)

    async def _bulk(self, actions: list[dict[str, Any]]) -> None:
        await async_bulk(
            self._client,
            actions,
            index=self.target,
            chunk_size=self._chunk_size,
            max_chunk_bytes=self._max_bytes,
            max_retries=3,  # 429 (bulk queue full) is retried with backoff
            initial_backoff=1,
            # never let a missing alias auto-create an index of that name with dynamic mapping
            require_alias=self.target == self.alias,
        )

    async def delete_document(
        self,
        tenant: str,
        doc_id: str,
        *,
        keep_version: str | None = None,
        versions: Sequence[str] | None = None,
    ) -> int:
        if versions is not None and not versions:
            return 0
        body = {
            "query": m.document_query(tenant, doc_id, keep_version=keep_version, versions=versions)
        }
        with translate_errors(self._what()):
            result = await self._client.delete_by_query(
                index=self.target,
                body=body,
                refresh=self._refresh,
                conflicts="proceed",  # a chunk rewritten meanwhile is newer: leave it
            )
        return int(result["deleted"])

    async def set_groups(
        self, tenant: str, doc_id: str, version: str, groups: Sequence[str]
    ) -> int:
        body = {
            "query": m.document_query(tenant, doc_id, versions=[version]),
            "script": {
                "lang": "painless",
                "source": f"ctx._source.{m.GROUPS_FIELD} = params.groups",
                "params": {"groups": list(normalise_groups(groups))},
            },
        }
        with translate_errors(self._what()):
            result = await self._client.update_by_query(
                index=self.target, body=body, refresh=self._refresh, conflicts="proceed"
            )
        return int(result["updated"])

    # -- reads -----------------------------------------------------------------------------
    async def knn(
        self,
        tenant: str,
        vector: Sequence[float],
        k: int,
        filters: SearchFilters | None = None,
        *,
        audience: frozenset[str] | None = None,
    ) -> list[SearchHit]:
        query = np.asarray(vector, dtype=np.float32)
        if query.shape != (self.dim,):
            raise ValueError(f"query vector must have {self.dim} dimensions, got {query.shape}")
        if not np.isfinite(query).all():
            raise ValueError("query vector must be finite")
        body = m.knn_query(
            tenant,
            query.tolist(),
            k,
            filters,
            ef_search=self.settings.ef_search,
            audience=audience,
        )
        hits = await self._search(body)
        return [
            SearchHit(chunk=m.from_source(h["_source"]), score=m.cosine_from_score(h["_score"]))
            for h in hits
        ]

    async def bm25(
        self,
        tenant: str,
        text: str,
        k: int,
        filters: SearchFilters | None = None,
        *,
        audience: frozenset[str] | None = None,
    ) -> list[SearchHit]:
        m.check_k(k)
        if not text or not text.strip():
            return []
        hits = await self._search(m.bm25_query(tenant, text, k, filters, audience=audience))
        return [
            SearchHit(chunk=m.from_source(h["_source"]), score=float(h["_score"])) for h in hits
        ]

    async def _search(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        with translate_errors(self._what()):
            result = await self._client.search(index=self.target, body=body)
        return list(result["hits"]["hits"])

    async def get_chunks(self, tenant: str, doc_id: str) -> list[ChunkRecord]:
        body: dict[str, Any] = {
            "size": _PAGE,
            "query": m.document_query(tenant, doc_id),
            "sort": [{"version": "asc"}, {"chunk_index": "asc"}],
            "_source": {"excludes": m.SOURCE_EXCLUDES},
            "track_total_hits": False,
        }
        out: list[ChunkRecord] = []
        while True:
            hits = await self._search(body)
            out.extend(m.from_source(h["_source"]) for h in hits)
            if len(hits) < _PAGE:
                return out
            body["search_after"] = hits[-1]["sort"]

    async def count(self, tenant: str | None = None) -> int:
        query = {"match_all": {}} if tenant is None else {"term": {"tenant": tenant}}
        with translate_errors(self._what()):
            result = await self._client.count(index=self.target, body={"query": query})
        return int(result["count"])


class OpenSearchIndexAdmin(IndexAdmin):
    """Physical indexes ``<alias>-<dim>-v<n>`` behind the model's alias; ``promote`` is one
    ``_aliases`` request (remove the old, add the new), so readers switch atomically."""

    def __init__(self, settings: OpenSearchSettings, *, replicas: int | None = None) -> None:
        self.settings = settings
        self.replicas = replicas
        self._client = make_client(settings)

    def _index(self, model_id: str, dim: int, target: str | None = None) -> OpenSearchIndex:
        return OpenSearchIndex(
            self.settings,
            model_id=model_id,
            dim=dim,
            client=self._client,
            target=target,
            replicas=self.replicas,
        )

    async def create(self, model_id: str, dim: int) -> str:
        return await self._index(model_id, dim).create_index()

    def open(self, name: str, dim: int) -> VectorIndex:
        model_id = self._model_of(name, dim)
        return self._index(model_id, dim, target=name)

    def open_serving(self, model_id: str, dim: int) -> VectorIndex:
        return self._index(model_id, dim)

    def _model_of(self, name: str, dim: int) -> str:
        # the mapping's _meta carries the model id; the name only its slug
        prefix = m.alias_name(self.settings.index_prefix, "x")[:-1]
        tail = name.removeprefix(prefix)
        slug, _, rest = tail.rpartition(f"-{dim}-v")
        if not slug or not rest.isdigit():
            raise ValueError(f"{name!r} is not a {dim}-d index under {prefix!r}")
        return slug

    async def promote(self, model_id: str, dim: int, name: str) -> list[str]:
        return await self._index(model_id, dim).swap_alias(name)

    async def serving(self, model_id: str, dim: int) -> str | None:
        alias = m.alias_name(self.settings.index_prefix, model_id)
        with translate_errors(f"opensearch:{alias}"):
            try:
                found = sorted(await self._client.indices.get_alias(name=alias))
            except osx.NotFoundError:
                return None
        # the alias is per model; an index of another dimension behind it is not this one's
        ours = [i for i in found if m.revision_of(i, self.settings.index_prefix, model_id, dim)]
        return ours[0] if ours else None

    async def list(self, model_id: str, dim: int) -> list[str]:
        base = m.index_pattern_base(self.settings.index_prefix, model_id, dim)
        with translate_errors(f"opensearch:{base}*"):
            found = await self._client.indices.get(
                index=f"{base}*", allow_no_indices=True, expand_wildcards="all"
            )
        return sorted(
            (i for i in found if m.revision_of(i, self.settings.index_prefix, model_id, dim)),
            key=lambda i: m.revision_of(i, self.settings.index_prefix, model_id, dim) or 0,
        )

    async def drop(self, name: str, *, force: bool = False) -> None:
        with translate_errors(f"opensearch:{name}"):
            aliases = await self._client.indices.get_alias(index=name, ignore=[404])
            if aliases.get(name, {}).get("aliases") and not force:
                raise ValueError(f"index {name!r} is serving an alias; promote another first")
            await self._client.indices.delete(index=name, ignore=[404])  # and its aliases

    async def close(self) -> None:
        await self._client.close()
