"""What the gateway is built from: the adapters its caller owns (and closes) and the hooks into
the rest of the product. REST (``app.py``), gRPC (``grpc_server.py``) and ``QueryService`` all take
this one object, so neither transport module needs the other."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from datatorag.answering.builder import ProviderFactory
from datatorag.config import Settings
from datatorag.ports import BlobStore, Embedder, Registry, VectorIndex
from datatorag.runtime import Readiness

# (tenant, source_id) -> detail; raises NotFound for an unknown source
SyncHook = Callable[[str, str], Awaitable[dict[str, Any] | None]]
# (tenant, filename, data, content_type, groups) -> detail; groups: the upload's audience
# (None: the uploads source's rules)
UploadHook = Callable[
    [str, str, bytes, str | None, tuple[str, ...] | None], Awaitable[dict[str, Any] | None]
]

Check = Callable[[], Awaitable[None]]


class ReindexControl(Protocol):
    """A reindex run by this process (``POST/GET/DELETE /v1/admin/reindex``)."""

    async def start(self, model_dir: str) -> dict[str, Any]:
        """Begin (or resume) a reindex; ``ValueError`` for a bad model directory (nothing
        changed), ``RuntimeError`` when one is already running."""
        ...

    def status(self) -> dict[str, Any]: ...

    async def cancel(self) -> dict[str, Any]:
        """Stop it; the serving index stays as it was."""
        ...


def default_index_limit() -> int:
    """Two index queries per core: enough to keep every core busy, few enough that an embedded
    index does not thrash (measured in bench/bench_query.py)."""
    return 2 * (os.cpu_count() or 1)


@dataclass
class GatewayDeps:
    settings: Settings
    index: VectorIndex
    embedder: Embedder
    registry: Registry
    blobstore: BlobStore | None = None
    # /readyz checks: a Readiness, or callables / (name, callable) pairs; None = the adapters'
    # own check() methods
    readiness: Readiness | Sequence[Check | tuple[str, Check]] | None = None
    on_sync: SyncHook | None = None  # (tenant, source_id) -> detail; raise NotFound if unknown
    on_upload: UploadHook | None = None  # (tenant, filename, data, content_type, groups)
    reindex: ReindexControl | None = None  # the admin reindex endpoint (None: 501, use the CLI)
    max_query_chars: int = 2000
    batch_queries: bool = True  # coalesce concurrent query embeddings into one forward pass
    # index queries in flight at once (None: unbounded); excess requests wait their turn
    max_concurrent_index_queries: int | None = field(default_factory=lambda: default_index_limit())
    # POST /v1/answer: the providers in fallback order (None: the offline extractive answerer);
    # bootstrap builds them from DATATORAG_ANSWER_PROVIDERS
    answer_providers: ProviderFactory | None = None

    def readiness_checks(self) -> Readiness:
        if isinstance(self.readiness, Readiness):
            return self.readiness
        ready = Readiness(debug=self.settings.debug_errors)
        if self.readiness is None:
            ready.add("vector_index", self.index.check)
            ready.add("registry", self.registry.check)
            ready.add("embedder", self.embedder.check)
            if self.blobstore is not None:
                ready.add("blobstore", self.blobstore.check)
            return ready
        for item in self.readiness:
            name, check = item if isinstance(item, tuple) else (_check_name(item), item)
            while name in ready.checks:
                name += "_"
            ready.add(name, check)
        return ready


def _check_name(check: Check) -> str:
    owner = getattr(check, "__self__", None)
    if owner is not None and getattr(check, "__name__", "") == "check":
        return type(owner).__name__
    return getattr(check, "__name__", None) or type(check).__name__
