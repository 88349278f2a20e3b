"""Reindex (a new model) and rebuild (the same model, from stored vectors) wired from settings,
for the CLI and for the admin endpoint of an in-process gateway (``datatorag up``)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from datatorag.bootstrap.factory import (
    make_blobstore,
    make_embedding_cache,
    make_index_admin,
    make_registry,
)
from datatorag.config import Settings
from datatorag.domain.errors import DependencyError
from datatorag.domain.models import utcnow
from datatorag.embedding.cached import CachedEmbedder
from datatorag.embedding.model_dir import ModelSpec, resolve_model
from datatorag.pipeline.index_build import (
    BuildProgress,
    FreshVectors,
    IndexBuilder,
    ProgressHook,
    Retired,
    StoredVectors,
    drop_retired,
)
from datatorag.ports import BlobStore, EmbeddingCache, IndexAdmin, Registry


def check_model_dir(model_dir: str) -> ModelSpec:
    """The new model's directory, checked before anything changes (``ValueError`` says why)."""
    try:
        spec = resolve_model(model_dir)
    except DependencyError as exc:
        raise ValueError(f"--model {model_dir}: {exc.detail}") from exc
    if not spec.dim:
        raise ValueError(f"--model {model_dir}: cannot tell the model's output dimension")
    return spec


class BuildParts:
    """The adapters a build uses, closed together."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.registry: Registry = make_registry(settings)
        self.blobstore: BlobStore = make_blobstore(settings)
        self.admin: IndexAdmin = make_index_admin(settings)
        self.cache: EmbeddingCache | None = (
            make_embedding_cache(settings) if settings.embedding.cache else None
        )

    async def close(self) -> None:
        for part in (self.registry, self.blobstore, self.admin, self.cache):
            if part is not None:
                await part.close()


def _current_shape(settings: Settings) -> tuple[str, int]:
    spec = resolve_model(settings.embedding.model)
    dim = settings.embedding.truncate_dim or spec.dim
    if not dim:
        raise ValueError(f"cannot tell the dimension of model {settings.embedding.model}")
    return spec.model_id, dim


async def reindex_builder(
    parts: BuildParts, model_dir: str, on_progress: ProgressHook | None = None
) -> tuple[IndexBuilder, list[Retired]]:
    """The builder for a model change; loads the new model (in this process)."""
    from datatorag.embedding.local import LocalEmbedder  # torch: only where a model runs

    check_model_dir(model_dir)
    settings = parts.settings
    new = settings.embedding.model_copy(update={"model": model_dir})
    embedder = await asyncio.to_thread(LocalEmbedder, new)
    source = embedder if parts.cache is None else CachedEmbedder(embedder, parts.cache)
    builder = IndexBuilder(
        registry=parts.registry,
        blobstore=parts.blobstore,
        admin=parts.admin,
        vectors=FreshVectors(parts.blobstore, source),
        on_progress=on_progress,
    )
    retire: list[Retired] = []
    old_id, old_dim = _current_shape(settings)
    if (old_id, old_dim) != (embedder.model_id, embedder.dim):
        serving = await parts.admin.serving(old_id, old_dim)
        if serving is not None:  # the old model's index goes after the grace period
            retire.append(
                Retired(
                    name=serving,
                    model_id=old_id,
                    dim=old_dim,
                    drop_after=utcnow(),
                    model_change=True,
                )
            )
    return builder, retire


def rebuild_builder(parts: BuildParts, on_progress: ProgressHook | None = None) -> IndexBuilder:
    model_id, dim = _current_shape(parts.settings)
    return IndexBuilder(
        registry=parts.registry,
        blobstore=parts.blobstore,
        admin=parts.admin,
        vectors=StoredVectors(parts.blobstore, model_id, dim),
        on_progress=on_progress,
    )


async def run_build(
    builder: IndexBuilder, parts: BuildParts, retire: list[Retired], grace_s: float
) -> BuildProgress:
    await drop_retired(parts.blobstore, parts.admin)
    return await builder.run(retire_also=retire, grace=timedelta(seconds=grace_s))


class InProcessReindex:
    """``POST/GET/DELETE /v1/admin/reindex`` for a gateway that runs in the same process as the
    rest (``datatorag up``); a production gateway leaves it to ``datatorag reindex`` (a job)."""

    def __init__(self, settings: Settings, grace_s: float = 24 * 3600) -> None:
        self.settings = settings
        self.grace_s = grace_s
        self._task: asyncio.Task[BuildProgress] | None = None
        self._builder: IndexBuilder | None = None
        self._error: str | None = None
        self._model_dir: str | None = None

    async def start(self, model_dir: str) -> dict[str, Any]:
        if self._task is not None and not self._task.done():
            raise RuntimeError(f"a reindex to {self._model_dir} is running")
        check_model_dir(model_dir)
        self._model_dir, self._error = model_dir, None
        self._task = asyncio.create_task(self._run(model_dir), name="reindex")
        return {"accepted": True, "model_dir": model_dir}

    async def _run(self, model_dir: str) -> BuildProgress:
        parts = BuildParts(self.settings)
        try:
            builder, retire = await reindex_builder(parts, model_dir)
            self._builder = builder
            return await run_build(builder, parts, retire, self.grace_s)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            await parts.close()

    def status(self) -> dict[str, Any]:
        progress = self._builder.progress if self._builder else None
        state = "idle" if self._task is None else ("running" if not self._task.done() else None)
        body: dict[str, Any] = {"model_dir": self._model_dir, "error": self._error}
        body.update(progress.as_dict() if progress else {})
        body["state"] = state or (progress.state if progress else "failed")
        return body

    async def cancel(self) -> dict[str, Any]:
        task, dropped = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._builder is not None:
            parts = BuildParts(self.settings)
            try:
                builder = IndexBuilder(
                    registry=parts.registry,
                    blobstore=parts.blobstore,
                    admin=parts.admin,
                    vectors=self._builder.vectors,
                )
                dropped = await builder.cancel_build()
            finally:
                await parts.close()
        return {"cancelled": task is not None, "dropped": dropped}
