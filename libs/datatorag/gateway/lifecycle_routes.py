"""Document lifecycle routes: delete a document or a source, list sources and their runs, and
the admin reindex. Served from the registry and the index (never from the connector's own
port), so the gateway answers them in production as in the embedded product."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from datatorag.gateway.admin import Admin
from datatorag.gateway.auth import Caller
from datatorag.gateway.deps import GatewayDeps
from datatorag.gateway.errors import ApiError
from datatorag.gateway.schemas import ErrorBody
from datatorag.lifecycle.deletion import (
    BlobRetention,
    SourceBusy,
    delete_document,
    delete_source,
)
from datatorag.lifecycle.sources import SourceStatus, source_status, sources_status
from datatorag.ports import SyncRun

Id = Annotated[str, Path(min_length=1, max_length=512)]
Responses = dict[int | str, dict[str, Any]]
_ADMIN: Responses = {403: {"model": ErrorBody, "description": "not an admin key"}}
_404: Responses = {404: {"model": ErrorBody, "description": "no such document or source"}}


class Deleted(BaseModel):
    doc_id: str
    versions: list[str]
    chunks_removed: int
    blobs_removed: int = Field(description="0 when the retention policy keeps blobs")
    deleted_at: str
    deleted_by: str


class SourceDeleted(BaseModel):
    source: str
    documents: int
    chunks_removed: int
    blobs_removed: int


class SourceList(BaseModel):
    count: int
    sources: list[SourceStatus]


class RunList(BaseModel):
    source: str
    count: int
    runs: list[SyncRun]


class ReindexRequest(BaseModel):
    model_dir: str = Field(min_length=1, max_length=4096, description="the new model's directory")


def lifecycle_router(deps: GatewayDeps) -> APIRouter:
    v1 = APIRouter(prefix="/v1")
    retention = BlobRetention(deps.settings.delete_blob_retention)

    @v1.delete(
        "/documents/{doc_id}",
        response_model=Deleted,
        tags=["documents"],
        responses={**_ADMIN, **_404},
        summary="Delete a document: every version's chunks, its registry record, its blobs",
    )
    async def delete(doc_id: Id, admin: Admin) -> Deleted:
        result = await delete_document(
            deps.registry, deps.index, deps.blobstore, admin.tenant, doc_id,
            by=admin.subject, retention=retention,
        )  # fmt: skip
        if result is None:  # unknown, deleted, or another tenant's: the same answer
            raise ApiError(404, f"document {doc_id!r} not found")
        return Deleted(**vars(result), deleted_by=admin.subject)

    @v1.get(
        "/sources",
        response_model=SourceList,
        tags=["sources"],
        summary="Each source: kind, schedule, next and last run, documents by status, lag",
    )
    async def sources(caller: Caller) -> SourceList:
        found = await sources_status(deps.registry, caller.tenant, caller.audience())
        return SourceList(count=len(found), sources=found)

    @v1.get(
        "/sources/{source_id}/runs",
        response_model=RunList,
        tags=["sources"],
        responses=_404,
        summary="A source's run history (type, trigger, counts, errors), newest first",
    )
    async def runs(
        source_id: Id, caller: Caller, limit: Annotated[int, Query(ge=1, le=500)] = 50
    ) -> RunList:
        found = await deps.registry.sync_runs(caller.tenant, source_id, limit=limit)
        if not found and await deps.registry.get_source(caller.tenant, source_id) is None:
            raise ApiError(404, f"source {source_id!r} not found")
        audience = caller.audience()
        if audience is not None:
            found = await _visible_errors(deps, caller.tenant, source_id, audience, found)
        return RunList(source=source_id, count=len(found), runs=found)

    @v1.get(
        "/sources/{source_id}",
        response_model=SourceStatus,
        tags=["sources"],
        responses=_404,
        summary="One source's status",
    )
    async def source(source_id: Id, caller: Caller) -> SourceStatus:
        found = await source_status(deps.registry, caller.tenant, source_id, caller.audience())
        if found is None:
            raise ApiError(404, f"source {source_id!r} not found")
        return found

    @v1.delete(
        "/sources/{source_id}",
        response_model=SourceDeleted,
        tags=["sources"],
        responses={**_ADMIN, **_404, 409: {"model": ErrorBody, "description": "a sync is running"}},
        summary="Stop a source's schedule and purge its documents",
    )
    async def drop_source(source_id: Id, admin: Admin) -> SourceDeleted:
        try:
            result = await delete_source(
                deps.registry, deps.index, deps.blobstore, admin.tenant, source_id,
                by=admin.subject, retention=retention,
            )  # fmt: skip
        except SourceBusy as exc:
            raise ApiError(409, str(exc), code="sync_running") from exc
        if result is None:
            raise ApiError(404, f"source {source_id!r} not found")
        return SourceDeleted(
            source=result.source,
            documents=result.documents,
            chunks_removed=result.chunks_removed,
            blobs_removed=result.blobs_removed,
        )

    def _control() -> Any:
        if deps.reindex is None:
            raise ApiError(
                501, "reindex runs as a job here: `datatorag reindex --model DIR`", code="use_cli"
            )
        return deps.reindex

    @v1.post(
        "/admin/reindex",
        status_code=202,
        tags=["admin"],
        responses={**_ADMIN, 400: {"model": ErrorBody}, 409: {"model": ErrorBody}},
        summary="Build the index of a new model blue/green from the stored chunks",
    )
    async def reindex(req: ReindexRequest, _admin: Admin) -> dict[str, Any]:
        control = _control()
        try:
            started: dict[str, Any] = await control.start(req.model_dir)
        except ValueError as exc:
            raise ApiError(400, str(exc), code="bad_model_dir") from exc
        except RuntimeError as exc:
            raise ApiError(409, str(exc), code="reindex_running") from exc
        return started

    @v1.get("/admin/reindex", tags=["admin"], responses=_ADMIN, summary="Reindex progress")
    async def reindex_status(_admin: Admin) -> dict[str, Any]:
        status: dict[str, Any] = _control().status()
        return status

    @v1.delete(
        "/admin/reindex",
        tags=["admin"],
        responses=_ADMIN,
        summary="Cancel the reindex; the serving index stays untouched",
    )
    async def reindex_cancel(_admin: Admin) -> dict[str, Any]:
        cancelled: dict[str, Any] = await _control().cancel()
        return cancelled

    return v1


async def _visible_errors(
    deps: GatewayDeps, tenant: str, source: str, audience: frozenset[str], runs: list[SyncRun]
) -> list[SyncRun]:
    """A failed path names a document: a caller sees only the failures of documents its
    audience may see (a failure the registry cannot place, admins only). Counts stay whole."""
    if not any(run.errors for run in runs):
        return runs
    visible = {
        d.doc_id
        for d in await deps.registry.find(
            tenant=tenant, source=source, audience=audience, limit=100_000
        )
    }
    return [
        run.model_copy(update={"errors": [e for e in run.errors if e.get("doc_id") in visible]})
        for run in runs
    ]
