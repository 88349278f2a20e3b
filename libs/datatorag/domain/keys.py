"""Deterministic identifiers and blob keys."""

from __future__ import annotations

import hashlib
import re

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def version_of(sha256_hex: str) -> str:
    return sha256_hex[:16]


def doc_id_for(source: str, path: str) -> str:
    """Stable id of a document per source path (or per API record id)."""
    digest = hashlib.sha256(f"{source}\x00{path}".encode("utf-8", "surrogateescape")).hexdigest()
    return f"{slug(source)}-{digest[:20]}"


def slug(value: str, max_len: int = 48) -> str:
    return _SAFE.sub("_", value).strip("_")[:max_len] or "_"


def raw_key(tenant: str, source: str, doc_id: str, sha256_hex: str) -> str:
    return f"raw/{slug(tenant)}/{slug(source)}/{doc_id}/{sha256_hex}"


def chunks_key(tenant: str, doc_id: str, version: str) -> str:
    return f"chunks/{slug(tenant)}/{doc_id}/{version}.json"


def records_key(tenant: str, doc_id: str, version: str, model_id: str) -> str:
    return f"embedded/{slug(tenant)}/{doc_id}/{version}.{slug(model_id)}.json"


def sync_lease_name(tenant: str, source: str) -> str:
    """The registry lease a sync of a source holds (and a source deletion takes)."""
    return f"sync:{tenant}:{source}"


def records_prefix(tenant: str, doc_id: str) -> str:
    """Every model's embedded records of every version of a document."""
    return f"embedded/{slug(tenant)}/{doc_id}/"
