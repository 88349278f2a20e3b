"""Vector index on LanceDB (embedded, on disk): exact cosine k-NN and native BM25 full-text search.

* One table; the tenant and ``SearchFilters`` become a SQL ``WHERE`` applied as a *prefilter*
  inside the k-NN / FTS query, so ``k`` hits come back whenever ``k`` matching rows exist, however
  many rows other tenants hold.
* k-NN is an exact scan until the table reaches ``ann_min_rows``; then ``optimize`` builds an
  IVF_FLAT index (k-means partitions, exact distances inside them: seconds to build, no
  quantisation loss) whose partitions hold about sqrt(rows) rows (at least 256), so a probe
  reads a few hundred rows. The size is given as Lance's ``target_partition_size``: Lance keeps
  it when ``optimize`` folds new rows in (given a partition *count*, it re-partitions to its own
  default of ~10k rows each on the next optimize - measured 316 partitions down to 7 - and every
  query becomes a near-full scan).
  Queries probe ``nprobes`` partitions and, when a narrow filter leaves fewer than ``k`` hits
  there, search again probing on (``maximum_nprobes(0)``) so the ``k``-hits promise holds.
  Rows added after the build are scanned exactly until the next ``optimize`` folds them in as a
  delta segment; every segment is probed separately, so past ``max_ann_segments`` the index is
  retrained whole (partitions sized for the grown table).
* Reads select three columns, ``text``, ``groups`` and ``payload`` (the other record fields as
  one JSON string): Lance pays per column read (~0.3 ms each), so a 14-column hit list cost
  4-5 ms more per query than this. The separate columns remain for filters, the merge key and
  full text.
* Audiences: ``groups`` is a list column with a LabelList index; a principal's audience is an
  ``array_has_any(groups, [...])`` clause of the same prefilter, so the ``k``-hits promise
  holds for a reader who sees a tenth of the tenant. ``set_groups`` is an ``UPDATE`` of that
  column (it is not in ``payload`` for that reason): nothing is re-embedded. A table written
  before audiences existed is migrated when opened (every chunk ``['everyone']``).
* Full text uses Lance's native inverted indexes (no tantivy) on ``title`` and ``text``, searched
  together. Rows written after the last index build are still searched (Lance scans unindexed
  fragments), so an upsert is searchable at once; ``optimize`` folds them into the indexes and
  compacts fragments, and runs by itself after every ``optimize_every_rows`` written rows.
* ``upsert`` is a ``merge_insert`` on (``tenant``, ``id``), so a redelivered batch never
  duplicates. The tenant is part of the key because ``doc_id`` derives from source name and path,
  which two tenants may share.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import math
import os
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import lancedb
import numpy as np
import orjson
import pyarrow as pa
from lancedb.index import FTS, Bitmap, IvfFlat, LabelList

from datatorag.domain.audience import DEFAULT_GROUPS, normalise_groups
from datatorag.domain.errors import DependencyError
from datatorag.domain.models import ChunkRecord, SearchFilters, SearchHit
from datatorag.ports.vector_index import IndexAdmin, VectorIndex

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_FTS_COLUMNS = ["title", "text"]
_RECORD_COLUMNS = [
    "id", "tenant", "doc_id", "version", "chunk_index", "text", "title", "section", "page_start",
    "page_end", "source", "path", "doc_type", "updated_at", "groups",
]  # fmt: skip
_PAYLOAD_COLUMNS = [c for c in _RECORD_COLUMNS if c not in ("text", "groups")]
_READ_COLUMNS = ["text", "groups", "payload"]
_GROUPS_TYPE = pa.list_(pa.string())
_MAX_K = 10_000
_VECTOR_INDEX = "vector_idx"  # Lance's name for the index on the "vector" column


def _schema(dim: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("tenant", pa.string(), nullable=False),
            pa.field("doc_id", pa.string(), nullable=False),
            pa.field("version", pa.string(), nullable=False),
            pa.field("chunk_index", pa.int32(), nullable=False),
            pa.field("text", pa.string(), nullable=False),
            pa.field("title", pa.string()),
            pa.field("section", pa.string()),
            pa.field("page_start", pa.int32()),
            pa.field("page_end", pa.int32()),
            pa.field("source", pa.string(), nullable=False),
            pa.field("path", pa.string(), nullable=False),
            pa.field("doc_type", pa.string()),
            # microseconds since the epoch, UTC: exact round trip and plain integer filters
            pa.field("updated_at", pa.int64(), nullable=False),
            pa.field("vector", pa.list_(pa.float32(), dim), nullable=False),
            pa.field("groups", _GROUPS_TYPE, nullable=False),  # the audience (see module doc)
            # every field but text, groups and vector, as JSON: what a read selects
            pa.field("payload", pa.string(), nullable=False),
        ]
    )


def _sql_str(value: str) -> str:
    if "\x00" in value:
        raise ValueError("filter values may not contain NUL")
    return "'" + value.replace("'", "''") + "'"


def _to_us(dt: datetime) -> int:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - _EPOCH) // _US


def _where(
    tenant: str, filters: SearchFilters | None, audience: frozenset[str] | None = None
) -> str:
    """The prefilter: tenant first, then the audience and each filter; values are quoted SQL
    literals."""
    if not tenant:
        raise ValueError("tenant is required")
    clauses = [f"tenant = {_sql_str(tenant)}"]
    if audience is not None:
        if not audience:
            return "false"  # a principal of no group (not even everyone) sees nothing
        names = ", ".join(_sql_str(g) for g in sorted(audience))
        clauses.append(f"array_has_any(groups, [{names}])")
    if filters is not None:
        for column, values in (
            ("source", filters.sources),
            ("doc_type", filters.doc_types),
            ("doc_id", filters.doc_ids),
        ):
            if values is not None:
                if not values:
                    return "false"  # an empty allow-list matches nothing
                clauses.append(f"{column} IN ({', '.join(_sql_str(v) for v in values)})")
        if filters.updated_after is not None:
            clauses.append(f"updated_at >= {_to_us(filters.updated_after)}")
        if filters.updated_before is not None:
            clauses.append(f"updated_at < {_to_us(filters.updated_before)}")
    return " AND ".join(clauses)


def _payload(fields: dict[str, Any]) -> str:
    """The record's fields but text and vector as JSON (``updated_at`` a datetime, stored as
    RFC 3339 in UTC; naive means UTC, as in the ``updated_at`` column)."""
    data = {c: fields[c] for c in _PAYLOAD_COLUMNS}
    at: datetime = data["updated_at"]
    data["updated_at"] = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return orjson.dumps(data).decode()


def _records(result: pa.Table) -> list[ChunkRecord]:
    """Rows of (text, payload) back to records. ``model_validate`` on the parsed JSON runs in
    pydantic-core: 2.5 us a record, where ``model_construct`` (Python) takes 6.5 us."""
    records = []
    for text, groups, payload in zip(
        result.column("text").to_pylist(),
        result.column("groups").to_pylist(),
        result.column("payload").to_pylist(),
        strict=True,
    ):
        data = orjson.loads(payload)
        data["text"] = text
        data["groups"] = groups
        records.append(ChunkRecord.model_validate(data))
    return records


class LanceDbIndex(VectorIndex):
    def __init__(
        self,
        path: str | Path,
        dim: int,
        table: str = "chunks",
        *,
        read_consistency_interval_s: float | None = 0.0,
        optimize_every_rows: int = 20_000,
        ann_min_rows: int | None = 10_000,
        nprobes: int = 20,
        ann_partition_rows: int | None = None,
        max_ann_segments: int = 3,
        exact_max_rows: int = 50_000,
    ) -> None:
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.path = Path(path)
        self.dim = dim
        self.table_name = table
        # 0: every query checks for writes by other processes (indexer vs. gateway); None: never.
        self._consistency = (
            None
            if read_consistency_interval_s is None
            else timedelta(seconds=read_consistency_interval_s)
        )
        self._optimize_every_rows = optimize_every_rows
        self._ann_min_rows = ann_min_rows  # None: always exact k-NN
        self._nprobes = nprobes
        self._ann_partition_rows = ann_partition_rows  # None: about sqrt(rows)
        self._max_ann_segments = max_ann_segments
        # a reader's audience leaving at most this many rows is searched exactly (see knn)
        self._exact_max_rows = exact_max_rows
        self._has_ann = False
        self._written_since_optimize = 0
        self._db: lancedb.AsyncConnection | None = None
        self._table: lancedb.AsyncTable | None = None
        self._open_lock = asyncio.Lock()
        self._write_lock = asyncio.Lock()

    # -- lifecycle -------------------------------------------------------------------------
    async def ensure(self) -> None:
        await self._tbl()

    async def _tbl(self) -> lancedb.AsyncTable:
        if self._table is not None:
            return self._table
        async with self._open_lock:
            if self._table is None:
                try:
                    self.path.mkdir(parents=True, exist_ok=True)
                    self._db = await lancedb.connect_async(
                        str(self.path), read_consistency_interval=self._consistency
                    )
                    try:
                        table = await self._db.open_table(self.table_name)
                    except ValueError:  # missing: create (exist_ok covers a concurrent create)
                        table = await self._db.create_table(
                            self.table_name, schema=_schema(self.dim), exist_ok=True
                        )
                except (OSError, ValueError, RuntimeError) as exc:
                    raise DependencyError(f"lancedb:{self.path}", str(exc)) from exc
                schema = await table.schema()
                self._check_dim(schema)
                if "payload" not in schema.names or "groups" not in schema.names:
                    table = await self._migrate(self._db, table)
                indices = await table.list_indices()
                existing = {(tuple(ix.columns), ix.index_type) for ix in indices}
                for column in _FTS_COLUMNS:
                    if ((column,), "FTS") not in existing:
                        await table.create_index(column, config=FTS())
                # every query prefilters on the tenant: without a bitmap that filter scans the
                # column (measured ~8 ms at 100k rows, more than the k-NN itself)
                if (("tenant",), "Bitmap") not in existing:
                    await table.create_index("tenant", config=Bitmap())
                # the audience clause of every reader's query (array_has_any)
                if (("groups",), "LabelList") not in existing:
                    await table.create_index("groups", config=LabelList())
                self._has_ann = any(ix.columns == ["vector"] for ix in indices)
                self._table = table
        return self._table

    def _check_dim(self, schema: pa.Schema) -> None:
        vector_type = schema.field("vector").type
        if getattr(vector_type, "list_size", None) != self.dim:
            raise DependencyError(
                f"lancedb:{self.path}/{self.table_name}",
                f"table holds vectors of type {vector_type}, index configured for dim {self.dim}"
                " (a model change needs a new table)",
            )

    async def _migrate(
        self, db: lancedb.AsyncConnection, table: lancedb.AsyncTable
    ) -> lancedb.AsyncTable:
        """A table written before the ``payload`` or the ``groups`` column: rewrite it with them
        (indexes are rebuilt; every chunk of a table from before audiences is ``everyone``'s,
        as it was). Embedded tables are small enough to rewrite in one go."""
        data = await table.query().to_arrow()
        if "groups" not in data.schema.names:
            everyone = [list(DEFAULT_GROUPS)] * data.num_rows
            data = data.append_column("groups", pa.array(everyone, _GROUPS_TYPE))
        if "payload" not in data.schema.names:
            payloads = [
                _payload({**row, "updated_at": _EPOCH + row["updated_at"] * _US})
                for row in data.select(_PAYLOAD_COLUMNS).to_pylist()
            ]
            data = data.append_column("payload", pa.array(payloads, pa.string()))
        table = await db.create_table(
            self.table_name,
            data.select(_schema(self.dim).names).cast(_schema(self.dim)),
            mode="overwrite",
        )
        if self._ann_min_rows is not None and data.num_rows >= self._ann_min_rows:
            await self._build_ann(table, data.num_rows)
        return table

    async def check(self) -> None:
        """An index read as a query makes one (a row's text and payload), and the row count."""
        table = await self._tbl()
        with self._reading():
            await table.query().select(_READ_COLUMNS).limit(1).to_arrow()
            await table.count_rows()

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        """Lance's I/O errors (the table's files deleted under a running process: "Not found:
        .../_versions") mean the index is missing, not a bug: a ``DependencyError`` (a 503)."""
        try:
            yield
        except (OSError, RuntimeError) as exc:
            raise DependencyError(f"lancedb:{self.path}", str(exc)) from exc

    async def close(self) -> None:
        if self._table is not None:
            self._table.close()  # type: ignore[no-untyped-call]
            self._table = None
        if self._db is not None:
            self._db.close()  # type: ignore[no-untyped-call]
            self._db = None

    # -- writes ----------------------------------------------------------------------------
    def _to_arrow(self, records: Sequence[ChunkRecord]) -> pa.Table:
        by_id: dict[tuple[str, str], ChunkRecord] = {}
        for r in records:
            if r.vector is None:
                raise ValueError(f"chunk {r.id!r} has no vector")
            if len(r.vector) != self.dim:
                raise ValueError(
                    f"chunk {r.id!r} has a {len(r.vector)}-d vector, index is {self.dim}-d"
                )
            by_id[(r.tenant, r.id)] = r  # last one wins, as if upserted in order
        rows = list(by_id.values())
        vectors = np.asarray([r.vector for r in rows], dtype=np.float32).reshape(-1)
        if not np.isfinite(vectors).all():
            raise ValueError("vectors must be finite")
        columns: dict[str, pa.Array] = {
            c: pa.array([getattr(r, c) for r in rows])
            for c in _RECORD_COLUMNS
            if c not in ("updated_at", "groups")
        }
        columns["updated_at"] = pa.array([_to_us(r.updated_at) for r in rows], pa.int64())
        columns["groups"] = pa.array([list(r.groups) for r in rows], _GROUPS_TYPE)
        columns["vector"] = pa.FixedSizeListArray.from_arrays(pa.array(vectors), self.dim)
        columns["payload"] = pa.array(
            [_payload(r.model_dump(include=set(_PAYLOAD_COLUMNS))) for r in rows],
            pa.string(),
        )
        schema = _schema(self.dim)
        return pa.Table.from_pydict(columns).select(schema.names).cast(schema)

    async def upsert(self, records: Sequence[ChunkRecord]) -> int:
        if not records:
            return 0
        data = self._to_arrow(records)
        table = await self._tbl()
        async with self._write_lock:
            await (
                table.merge_insert(["tenant", "id"])
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .execute(data)
            )
            self._written_since_optimize += data.num_rows
            if self._written_since_optimize >= self._optimize_every_rows:
                await self._optimize(table)
        return int(data.num_rows)

    async def delete_document(
        self,
        tenant: str,
        doc_id: str,
        *,
        keep_version: str | None = None,
        versions: Sequence[str] | None = None,
    ) -> int:
        where = f"{_where(tenant, None)} AND doc_id = {_sql_str(doc_id)}"
        if versions is not None:
            if not versions:
                return 0
            where += f" AND version IN ({', '.join(_sql_str(v) for v in versions)})"
        elif keep_version is not None:
            where += f" AND version != {_sql_str(keep_version)}"
        table = await self._tbl()
        async with self._write_lock:
            result = await table.delete(where)
        # lancedb's stubs lag its result type: num_deleted_rows is there at run time
        return int(result.num_deleted_rows)  # type: ignore[attr-defined]

    async def set_groups(
        self, tenant: str, doc_id: str, version: str, groups: Sequence[str]
    ) -> int:
        stored = list(normalise_groups(groups))
        where = (
            f"{_where(tenant, None)} AND doc_id = {_sql_str(doc_id)}"
            f" AND version = {_sql_str(version)}"
        )
        table = await self._tbl()
        async with self._write_lock:
            result = await table.update({"groups": stored}, where=where)
        return int(result.rows_updated)

    async def optimize(self) -> None:
        """Compact fragments and fold new rows into the full-text indexes."""
        table = await self._tbl()
        async with self._write_lock:
            await self._optimize(table)

    async def _optimize(self, table: lancedb.AsyncTable) -> None:
        await table.optimize()  # compaction + new rows into existing indexes
        self._written_since_optimize = 0
        if self._ann_min_rows is None:
            return
        if not self._has_ann:
            self._has_ann = any(ix.columns == ["vector"] for ix in await table.list_indices())
        if not self._has_ann:
            rows = await table.count_rows()
            if rows >= self._ann_min_rows:
                await self._build_ann(table, rows)
            return
        # optimize folded new rows in as one more segment; each is probed on every query
        stats = await table.index_stats(_VECTOR_INDEX)
        if stats is not None and (stats.num_indices or 0) > self._max_ann_segments:
            await self._build_ann(table, await table.count_rows())

    async def _build_ann(self, table: lancedb.AsyncTable, rows: int) -> None:
        """(Re)train the IVF index on all rows: one segment, partitions of ~sqrt(rows) rows."""
        size = self._ann_partition_rows or max(256, math.isqrt(rows))
        await table.create_index(
            "vector",
            config=IvfFlat(distance_type="cosine", target_partition_size=size),
            replace=True,
        )
        self._has_ann = True

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
        _check_k(k)
        query = np.asarray(vector, dtype=np.float32)
        if query.shape != (self.dim,):
            raise ValueError(f"query vector must have {self.dim} dimensions, got {query.shape}")
        table = await self._tbl()
        where = _where(tenant, filters, audience)
        # A reader's audience can leave a small share of the rows: the IVF partitions probed
        # then hold few of them, and recall drops (measured 0.86 at 10% visible, nprobes 20). A
        # principal who sees few rows gets an exact scan of just those (cheap: the prefilter
        # comes from the bitmap and label-list indexes); one who sees many, the index probing
        # as many more partitions as the audience is narrower than the tenant.
        exact, nprobes = False, self._nprobes
        if self._has_ann and audience is not None:
            with self._reading():
                shown = await table.count_rows(where)
                exact = shown <= self._exact_max_rows
                if not exact:
                    total = await table.count_rows(_where(tenant, filters))
                    share = max(shown / max(total, 1), 0.01)
                    nprobes = math.ceil(self._nprobes / share)

        def search(unbounded: bool) -> Any:
            q = table.query().nearest_to(query).distance_type("cosine")
            # (unbounded: the maximum first, as a minimum above the current maximum raises)
            if exact:
                q = q.bypass_vector_index()
            elif unbounded:
                q = q.maximum_nprobes(0).minimum_nprobes(nprobes)
            else:
                q = q.nprobes(nprobes)
            return (
                q.where(where)  # prefilter (the async API's default)
                .select([*_READ_COLUMNS, "_distance"])
                .limit(k)
                .to_arrow()
            )

        # nprobes partitions first; only when a narrow filter leaves fewer than k hits there,
        # probe on until k hits or every partition (unbounded from the start costs 2x: 7 vs 3 ms)
        with self._reading():
            result = await search(unbounded=False)
            if result.num_rows < k and self._has_ann and not exact:
                result = await search(unbounded=True)
        # Lance's cosine distance is 1 - cosine similarity; report the similarity.
        distances = result.column("_distance").to_pylist()
        return [
            SearchHit(chunk=chunk, score=1.0 - float(d))
            for chunk, d in zip(_records(result), distances, strict=True)
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
        _check_k(k)
        if not text or not text.strip():
            return []
        table = await self._tbl()
        where = _where(tenant, filters, audience)
        with self._reading():
            result = await (
                table.query()
                .nearest_to_text(text, columns=_FTS_COLUMNS)
                .where(where)
                .select([*_READ_COLUMNS, "_score"])
                .limit(k)
                .to_arrow()
            )
        scores = result.column("_score").to_pylist()
        hits = [
            SearchHit(chunk=chunk, score=float(score))
            for chunk, score in zip(_records(result), scores, strict=True)
        ]
        hits.sort(key=lambda h: -h.score)
        return hits

    async def get_chunks(self, tenant: str, doc_id: str) -> list[ChunkRecord]:
        table = await self._tbl()
        where = f"{_where(tenant, None)} AND doc_id = {_sql_str(doc_id)}"
        with self._reading():
            result = await table.query().where(where).select(_READ_COLUMNS).to_arrow()
        records = _records(result)
        records.sort(key=lambda r: (r.version, r.chunk_index))
        return records

    async def count(self, tenant: str | None = None) -> int:
        table = await self._tbl()
        where = None if tenant is None else _where(tenant, None)
        with self._reading():
            return await table.count_rows(where)


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= _MAX_K:
        raise ValueError(f"k must be an int within 1..{_MAX_K}, got {k!r}")


# -- blue/green -------------------------------------------------------------------------------
_ALIASES = "_aliases.json"  # logical table -> physical table, next to the tables


def logical_table(model_id: str, dim: int) -> str:
    """The name a model's readers and writers use: ``chunks_all_minilm_l6_v2_384``."""
    return f"chunks_{''.join(ch if ch.isalnum() else '_' for ch in model_id)}_{dim}"


def _read_aliases(path: Path) -> dict[str, str]:
    try:
        data = orjson.loads((path / _ALIASES).read_bytes())
    except FileNotFoundError:
        return {}
    return {str(k): str(v) for k, v in data.items()}


def resolve_table(path: str | Path, logical: str) -> str:
    """The physical table behind ``logical`` (itself until a build was promoted)."""
    return _read_aliases(Path(path)).get(logical, logical)


class LanceDbIndexAdmin(IndexAdmin):
    """Physical tables ``<logical>`` (the first, from before any rebuild) and ``<logical>_v<n>``;
    the alias map is one small JSON file replaced atomically (write, fsync, rename). A process
    resolves the alias when it opens the table: after a promote, restart the gateway and the
    indexer of an embedded install (``datatorag up``) to read the new table."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db: lancedb.AsyncConnection | None = None

    async def _conn(self) -> lancedb.AsyncConnection:
        if self._db is None:
            self.path.mkdir(parents=True, exist_ok=True)
            self._db = await lancedb.connect_async(str(self.path))
        return self._db

    async def _tables(self) -> builtins.list[str]:
        db = await self._conn()
        names: builtins.list[str] = []
        token: str | None = None
        while True:
            page = await db.list_tables(page_token=token)
            names.extend(page.tables)
            token = page.page_token
            if not token:
                return names

    async def list(self, model_id: str, dim: int) -> builtins.list[str]:
        logical = logical_table(model_id, dim)
        names = await self._tables()
        revisions = sorted(
            (int(n.removeprefix(f"{logical}_v")), n)
            for n in names
            if n.startswith(f"{logical}_v") and n.removeprefix(f"{logical}_v").isdigit()
        )
        return ([logical] if logical in names else []) + [n for _, n in revisions]

    async def create(self, model_id: str, dim: int) -> str:
        logical = logical_table(model_id, dim)
        existing = await self.list(model_id, dim)
        revs = [int(n.removeprefix(f"{logical}_v")) for n in existing if n != logical]
        name = f"{logical}_v{max(revs, default=1) + 1}"
        index = LanceDbIndex(self.path, dim=dim, table=name)
        try:
            await index.ensure()
        finally:
            await index.close()
        return name

    def open(self, name: str, dim: int) -> VectorIndex:
        return LanceDbIndex(self.path, dim=dim, table=name)

    def open_serving(self, model_id: str, dim: int) -> VectorIndex:
        return LanceDbIndex(
            self.path, dim=dim, table=resolve_table(self.path, logical_table(model_id, dim))
        )

    async def serving(self, model_id: str, dim: int) -> str | None:
        name = resolve_table(self.path, logical_table(model_id, dim))
        return name if name in await self._tables() else None

    async def promote(self, model_id: str, dim: int, name: str) -> builtins.list[str]:
        if name not in await self._tables():
            raise ValueError(f"table {name!r} does not exist")
        logical = logical_table(model_id, dim)
        aliases = _read_aliases(self.path)
        previous = [n for n in await self.list(model_id, dim) if n != name]
        aliases[logical] = name
        self._write_aliases(aliases)
        return previous

    def _write_aliases(self, aliases: dict[str, str]) -> None:
        tmp = self.path / f"{_ALIASES}.tmp"
        with tmp.open("wb") as f:
            f.write(orjson.dumps(aliases))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path / _ALIASES)

    def _serves(self, name: str) -> builtins.list[str]:
        """The logical names ``name`` serves: by the alias map, or as its own logical name."""
        aliases = _read_aliases(self.path)
        served = [logical for logical, target in aliases.items() if target == name]
        if (
            name.startswith("chunks_")
            and name not in aliases
            and not name.rpartition("_v")[2].isdigit()
        ):
            served.append(name)  # a first table, never aliased away
        return served

    async def drop(self, name: str, *, force: bool = False) -> None:
        served = self._serves(name)
        if served and not force:
            raise ValueError(f"table {name!r} is serving; promote another first")
        aliases = _read_aliases(self.path)
        if any(aliases.get(logical) == name for logical in served):
            self._write_aliases({k: v for k, v in aliases.items() if v != name})
        if name in await self._tables():
            db = await self._conn()
            await db.drop_table(name)

    async def close(self) -> None:
        if self._db is not None:
            self._db.close()  # type: ignore[no-untyped-call]
            self._db = None
