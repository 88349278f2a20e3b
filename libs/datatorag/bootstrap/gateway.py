"""The query gateway's parts: one ``QueryService`` that the REST app and the gRPC server share
(one query batcher, one index limiter, one set of adapters), and the hooks that connect it to the
connector (on-demand sync) and to the landing zone (uploads)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
from fastapi import FastAPI
from pydantic import SecretStr

from datatorag.bootstrap.answering import answer_providers
from datatorag.config import Settings
from datatorag.connectors.landing import LandingZone, UnsupportedUpload
from datatorag.domain.errors import NotFound, PermanentError, TransientError
from datatorag.gateway.app import create_app
from datatorag.gateway.deps import GatewayDeps, SyncHook, UploadHook
from datatorag.gateway.errors import ApiError
from datatorag.gateway.service import QueryService
from datatorag.runtime import SERVICE_TOKEN_HEADER

UPLOADS_SOURCE = "uploads"
_STATUS = {"too_large": 413, "empty_file": 400, "unsupported_type": 415, "bad_filename": 400}

Trigger = Callable[[str, str], Awaitable[Any]]


def upload_hook(landing: LandingZone, trigger: Trigger) -> UploadHook:
    """``POST /v1/documents``: an upload lands where the tenant's ``uploads`` source picks it up,
    and that source is synced at once, so an upload is indexed exactly like a file on the FTP
    server. A full disk propagates as ``InsufficientStorage`` (507), a landing bucket that is
    down as ``DependencyError`` (503)."""

    async def on_upload(
        tenant: str,
        filename: str,
        data: bytes,
        content_type: str | None,
        groups: tuple[str, ...] | None = None,
    ) -> dict[str, Any]:
        async def body() -> AsyncIterator[bytes]:
            yield data

        try:
            landed = await landing.receive(tenant, filename, body(), groups)
        except UnsupportedUpload as exc:
            detail = {"field": "file", "message": exc.reason, "type": exc.code}
            raise ApiError(
                415, exc.reason, code=exc.code, details=[{**detail, "detected": exc.detected_type}]
            ) from exc
        except PermanentError as exc:
            raise ApiError(_STATUS.get(exc.code, 400), exc.reason, code=exc.code) from exc
        await trigger(tenant, UPLOADS_SOURCE)
        return {
            "key": landed.key,
            "filename": landed.filename,
            "size": landed.size,
            "sha256": landed.sha256,
            "content_type": landed.content_type,
            "source": UPLOADS_SOURCE,
            "audience": list(groups) if groups is not None else None,
        }

    return on_upload


def s3_upload_hook(settings: Settings, trigger: Trigger) -> UploadHook | None:
    """Production uploads: ``S3Landing`` in the landing bucket (``DATATORAG_UPLOADS_BUCKET``),
    under ``{uploads_prefix}{tenant}/``, where the connector's ``uploads`` source of the tenant
    lists them (``bootstrap.connector.with_upload_sources``). None without a landing bucket."""
    if not settings.uploads_bucket:
        return None
    from datatorag.adapters.aws.session import AwsClients, AwsConnection
    from datatorag.connectors.landing import S3Landing

    landing = S3Landing(
        AwsClients(AwsConnection.from_settings(settings)),
        settings.uploads_bucket,
        max_bytes=settings.max_document_bytes,
        prefix=settings.uploads_prefix,
    )
    return upload_hook(landing, trigger)


def connector_sync_hook(
    base_url: str, service_token: SecretStr | None = None
) -> tuple[SyncHook, httpx.AsyncClient]:
    """On-demand syncs forwarded to the connector service, with the tenant of the caller's key
    and the shared service token (``X-Service-Token``)."""
    headers = {SERVICE_TOKEN_HEADER: service_token.get_secret_value()} if service_token else {}
    client = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=10, headers=headers)

    async def on_sync(tenant: str, source_id: str) -> dict[str, Any]:
        try:
            resp = await client.post(f"/internal/sources/{tenant}/{source_id}/sync")
        except httpx.HTTPError as exc:
            raise TransientError(f"connector service unreachable at {base_url}: {exc}") from exc
        if resp.status_code == 404:
            raise NotFound(f"no source {source_id!r}")
        resp.raise_for_status()
        body: dict[str, Any] = resp.json()
        return body

    return on_sync, client


@dataclass
class Gateway:
    """What a gateway process serves: REST always, gRPC when ``DATATORAG_GRPC_PORT`` is set."""

    deps: GatewayDeps
    service: QueryService
    app: FastAPI
    grpc_server: grpc.aio.Server | None = None
    grpc_port: int | None = None


def build_gateway(deps: GatewayDeps) -> Gateway:
    from datatorag.gateway.grpc_server import create_grpc_server

    settings: Settings = deps.settings
    if deps.answer_providers is None:  # DATATORAG_ANSWER_PROVIDERS, in fallback order
        deps.answer_providers = answer_providers(settings)
    service = QueryService(deps)
    app = create_app(deps, service)
    gw = Gateway(deps=deps, service=service, app=app)
    if settings.grpc_port is not None:
        gw.grpc_server, gw.grpc_port = create_grpc_server(
            service,
            app.state.edge,
            f"{settings.gateway_host}:{settings.grpc_port}",
        )
    return gw
