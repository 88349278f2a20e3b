"""``datatorag init``: create everything the configured mode needs, idempotently."""

from __future__ import annotations

from datatorag.bootstrap.factory import make_blobstore, make_queue, make_registry, make_vector_index
from datatorag.config import Mode, Settings
from datatorag.embedding.model_dir import resolve_model


def index_shape(settings: Settings) -> tuple[str, int]:
    """Model id and dimension from the model directory's configs (no weights loaded)."""
    spec = resolve_model(settings.embedding.model)
    dim = settings.embedding.truncate_dim or spec.dim
    if not dim:
        raise SystemExit(f"cannot tell the output dimension of the model in {spec.path}")
    return spec.model_id, dim


async def provision(settings: Settings) -> list[str]:
    lines: list[str] = []
    if settings.mode is Mode.PRODUCTION:
        from datatorag.adapters.aws.provision import provision_aws

        report = await provision_aws(settings)
        lines += [f"created   {x}" for x in report.created]
        lines += [f"updated   {x}" for x in report.updated]
        lines += [f"unchanged {x}" for x in report.unchanged]
    else:
        # Embedded stores create themselves; opening each one proves the data dir is usable.
        for logical in ("parse", "embed", "index"):
            q = make_queue(settings, logical)
            await q.check()
            await q.close()
            lines.append(f"ready     queue {q.name} (sqlite)")
        for store, what in (
            (make_blobstore(settings), "blob store"),
            (make_registry(settings), "registry"),
        ):
            await store.check()
            await store.close()
            lines.append(f"ready     {what} under {settings.data_dir}")
    model_id, dim = index_shape(settings)
    index = make_vector_index(settings, model_id=model_id, dim=dim)
    try:
        await index.ensure()
        await index.check()
    finally:
        await index.close()
    lines.append(f"ready     vector index for {model_id} ({dim}-d)")
    return lines
