"""Pure functions: index names, the index template, documents, and query bodies.

Nothing here talks to a cluster, so every request body the adapter sends can be built and
checked in isolation (tests assert, for instance, that the tenant filter sits *inside* the
k-NN clause, which is what makes OpenSearch filter during the graph search instead of after it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from datatorag.domain.models import ChunkRecord, SearchFilters
from datatorag.domain.principal import EVERYONE

VECTOR_FIELD = "vector"
BM25_FIELDS = ["title^2", "section", "text"]
ENGINES = ("lucene", "faiss", "nmslib")
# Analysis of the BM25 fields (title, section, text). "english" (OpenSearch's built-in English
# analyzer: lowercase, English stop words, possessives, Porter stemming) is what LanceDB's native
# full-text index does by default, so "leave" matches "leaves" on both adapters; "standard" is
# OpenSearch's default (lowercase only). bench/bench_handbooks.py measures the two.
TEXT_ANALYZERS = ("english", "standard")
DEFAULT_TEXT_ANALYZER = "english"
MAX_K = 10_000  # the k-NN plugin's ceiling for k
_MAX_ID_BYTES = 512  # OpenSearch's limit on _id
# What a hit or get_chunks returns: everything but the vector.
SOURCE_EXCLUDES = [VECTOR_FIELD]
_RECORD_FIELDS = (
    "tenant", "doc_id", "version", "chunk_index", "text", "title", "section", "page_start",
    "page_end", "source", "path", "doc_type", "groups",
)  # fmt: skip
GROUPS_FIELD = "groups"
# added to an index created before audiences (``OpenSearchIndex.ensure``): a keyword array
GROUPS_MAPPING = {"properties": {GROUPS_FIELD: {"type": "keyword"}}}
_NAME_SAFE = re.compile(r"[^a-z0-9._-]+")


# -- names ---------------------------------------------------------------------------------------
def model_slug(model_id: str) -> str:
    """``sentence-transformers/all-MiniLM-L6-v2`` -> ``all-minilm-l6-v2`` (valid in index names)."""
    name = model_id.rstrip("/").rsplit("/", 1)[-1].lower()
    slug = _NAME_SAFE.sub("-", name).strip("-._")
    if not slug:
        raise ValueError(f"model id {model_id!r} gives an empty index name part")
    return slug


def alias_name(prefix: str, model_id: str) -> str:
    """The stable name readers and writers use: ``datatorag-chunks-all-minilm-l6-v2``."""
    return f"{_prefix(prefix)}-{model_slug(model_id)}"


def index_name(prefix: str, model_id: str, dim: int, revision: int = 1) -> str:
    """A concrete index: ``datatorag-chunks-all-minilm-l6-v2-384-v1``."""
    if revision < 1:
        raise ValueError(f"revision must be >= 1, got {revision}")
    return f"{index_pattern_base(prefix, model_id, dim)}{revision}"


def index_pattern_base(prefix: str, model_id: str, dim: int) -> str:
    return f"{alias_name(prefix, model_id)}-{check_dim(dim)}-v"


def revision_of(index: str, prefix: str, model_id: str, dim: int) -> int | None:
    base = index_pattern_base(prefix, model_id, dim)
    tail = index[len(base) :] if index.startswith(base) else ""
    return int(tail) if tail.isdigit() else None


def _prefix(prefix: str) -> str:
    if not prefix or prefix != prefix.lower() or _NAME_SAFE.search(prefix) or prefix[0] in "-_.":
        raise ValueError(
            f"index prefix {prefix!r} must be lowercase [a-z0-9._-], not start with -_."
        )
    return prefix


def check_dim(dim: int) -> int:
    if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= 16_000:
        raise ValueError(f"dim must be an int within 1..16000, got {dim!r}")
    return dim


def doc_id_for(record: ChunkRecord) -> str:
    """Deterministic ``_id``: tenant + chunk id, so a redelivered batch overwrites, never
    duplicates.

    The tenant is part of it because two tenants may hold the same ``doc_id`` (it derives from
    source name and path). It is percent-encoded, so ``:`` separates unambiguously.
    """
    _id = f"{quote(record.tenant, safe='')}:{record.id}"
    if len(_id.encode()) > _MAX_ID_BYTES:
        raise ValueError(f"chunk id {record.id!r} of tenant {record.tenant!r} is too long for _id")
    return _id


# -- index template --------------------------------------------------------------------------------
def index_body(
    *,
    model_id: str,
    dim: int,
    engine: str,
    ef_construction: int,
    m: int,
    shards: int | None = None,
    replicas: int | None = None,
    refresh_interval: str | None = None,
    text_analyzer: str = DEFAULT_TEXT_ANALYZER,
) -> dict[str, Any]:
    """Settings and mappings of a chunk index (the ``template`` part of the index template)."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if ef_construction < 2 or m < 2:
        raise ValueError("ef_construction and m must be >= 2")
    if text_analyzer not in TEXT_ANALYZERS:
        raise ValueError(f"text_analyzer must be one of {TEXT_ANALYZERS}, got {text_analyzer!r}")
    index_settings: dict[str, Any] = {"knn": True}
    if shards is not None:
        index_settings["number_of_shards"] = shards
    if replicas is not None:
        index_settings["number_of_replicas"] = replicas
    if refresh_interval is not None:
        index_settings["refresh_interval"] = refresh_interval
    keyword = {"type": "keyword"}
    text = {"type": "text", "analyzer": text_analyzer}
    integer = {"type": "integer"}
    return {
        "settings": {"index": index_settings},
        "mappings": {
            "dynamic": "strict",  # a typo in a field name fails loudly instead of mapping junk
            "_meta": {"model_id": model_id, "dim": dim},
            "properties": {
                "chunk_id": keyword,
                "tenant": keyword,
                "source": keyword,
                "doc_id": keyword,
                "version": keyword,
                "doc_type": keyword,
                "path": keyword,
                GROUPS_FIELD: keyword,  # the audience: an array of group names
                "title": text,
                "section": text,
                "text": text,
                "chunk_index": integer,
                "page_start": integer,
                "page_end": integer,
                "updated_at": {"type": "date"},
                VECTOR_FIELD: {
                    "type": "knn_vector",
                    "dimension": check_dim(dim),
                    "method": {
                        "name": "hnsw",
                        "space_type": "cosinesimil",
                        "engine": engine,
                        "parameters": {"ef_construction": ef_construction, "m": m},
                    },
                },
            },
        },
    }


def template_body(
    pattern_base: str, body: Mapping[str, Any], priority: int = 100
) -> dict[str, Any]:
    """A composable index template applying ``body`` to ``<pattern_base>*`` (every revision)."""
    return {
        "index_patterns": [f"{pattern_base}*"],
        "priority": priority,
        "template": dict(body),
        "_meta": {"managed_by": "datatorag"},
    }


def vector_dim_of(mapping: Mapping[str, Any]) -> int | None:
    """The ``dimension`` of the vector field in a ``get_mapping`` entry's ``mappings``."""
    field = mapping.get("properties", {}).get(VECTOR_FIELD, {})
    dim = field.get("dimension")
    return int(dim) if dim is not None else None


# -- documents -----------------------------------------------------------------------------------
def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _iso(dt: datetime) -> str:
    return _utc(dt).isoformat(timespec="microseconds")


def to_source(record: ChunkRecord, vector: list[float]) -> dict[str, Any]:
    source: dict[str, Any] = {f: getattr(record, f) for f in _RECORD_FIELDS}
    source[GROUPS_FIELD] = list(record.groups)
    source["chunk_id"] = record.id
    source["updated_at"] = _iso(record.updated_at)
    source[VECTOR_FIELD] = vector
    return source


def from_source(source: Mapping[str, Any]) -> ChunkRecord:
    """A stored document back to a ``ChunkRecord`` (without its vector)."""
    data = {f: source.get(f) for f in _RECORD_FIELDS}  # no groups: written before audiences
    data["id"] = source["chunk_id"]
    data["updated_at"] = source["updated_at"]
    return ChunkRecord.model_validate(data)


# -- queries -------------------------------------------------------------------------------------
def audience_clause(audience: frozenset[str]) -> dict[str, Any]:
    """Chunks whose ``groups`` share a group with ``audience``; a chunk indexed before audiences
    has no ``groups`` and counts as ``everyone``'s."""
    if not audience:
        return {"match_none": {}}
    terms: dict[str, Any] = {"terms": {GROUPS_FIELD: sorted(audience)}}
    if EVERYONE not in audience:
        return terms
    legacy = {"bool": {"must_not": [{"exists": {"field": GROUPS_FIELD}}]}}
    return {"bool": {"should": [terms, legacy], "minimum_should_match": 1}}


def filter_clauses(
    tenant: str, filters: SearchFilters | None, audience: frozenset[str] | None = None
) -> list[dict[str, Any]]:
    """Term/range clauses for the tenant, the audience (``None``: every chunk of the tenant) and
    ``filters`` (exact values, no query syntax)."""
    if not tenant:
        raise ValueError("tenant is required")
    clauses: list[dict[str, Any]] = [{"term": {"tenant": tenant}}]
    if audience is not None:
        clauses.append(audience_clause(audience))
    if filters is None:
        return clauses
    for field, values in (
        ("source", filters.sources),
        ("doc_type", filters.doc_types),
        ("doc_id", filters.doc_ids),
    ):
        if values is not None:
            # an empty allow-list matches nothing
            clauses.append({"terms": {field: list(values)}} if values else {"match_none": {}})
    date_range: dict[str, str] = {}
    if filters.updated_after is not None:
        date_range["gte"] = _iso(filters.updated_after)
    if filters.updated_before is not None:
        date_range["lt"] = _iso(filters.updated_before)
    if date_range:
        clauses.append({"range": {"updated_at": date_range}})
    return clauses


def check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise ValueError(f"k must be an int within 1..{MAX_K}, got {k!r}")
    return k


def knn_query(
    tenant: str,
    vector: Sequence[float],
    k: int,
    filters: SearchFilters | None = None,
    *,
    ef_search: int | None = None,
    audience: frozenset[str] | None = None,
) -> dict[str, Any]:
    """k-NN search body with the tenant, audience and filters inside the ``knn`` clause
    (efficient filtering: the engine searches only matching documents, so k hits come back
    whenever k matching documents exist; a ``post_filter`` would drop hits after the top k were
    chosen)."""
    check_k(k)
    knn: dict[str, Any] = {
        "vector": list(vector),
        "k": k,
        "filter": {"bool": {"filter": filter_clauses(tenant, filters, audience)}},
    }
    if ef_search is not None:
        knn["method_parameters"] = {"ef_search": max(ef_search, k)}
    return {
        "size": k,
        "_source": {"excludes": SOURCE_EXCLUDES},
        "query": {"knn": {VECTOR_FIELD: knn}},
    }


def bm25_query(
    tenant: str,
    text: str,
    k: int,
    filters: SearchFilters | None = None,
    *,
    audience: frozenset[str] | None = None,
) -> dict[str, Any]:
    """BM25 over title (boosted), section and text; the same filters as a bool filter.

    ``multi_match`` analyses the text as plain words: no query syntax, so user input such as
    ``"E42`` or ``a AND (b`` cannot cause a parse error.
    """
    check_k(k)
    return {
        "size": k,
        "_source": {"excludes": SOURCE_EXCLUDES},
        "query": {
            "bool": {
                "must": [{"multi_match": {"query": text, "fields": BM25_FIELDS}}],
                "filter": filter_clauses(tenant, filters, audience),
            }
        },
    }


def document_query(
    tenant: str,
    doc_id: str,
    *,
    keep_version: str | None = None,
    versions: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The chunks of one document of one tenant: of ``versions`` only, or of every version but
    ``keep_version``, or all."""
    query: dict[str, Any] = {
        "bool": {"filter": [*filter_clauses(tenant, None), {"term": {"doc_id": doc_id}}]}
    }
    if versions is not None:
        query["bool"]["filter"].append({"terms": {"version": list(versions)}})
    elif keep_version is not None:
        query["bool"]["must_not"] = [{"term": {"version": keep_version}}]
    return query


def cosine_from_score(score: float) -> float:
    """The k-NN plugin reports cosinesimil as ``(1 + cos) / 2`` for every engine; return ``cos``."""
    return 2.0 * score - 1.0
