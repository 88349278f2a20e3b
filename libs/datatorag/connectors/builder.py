"""Build Source objects (and their schedules) from the sources configuration.

Secrets are resolved here, once per build. A source whose secret cannot be resolved is not
dropped silently: it becomes a ``BrokenSource`` whose every sync fails with the reason, recorded in
the registry like any other failed run, while the other sources keep running.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, TypeVar

from datatorag.connectors.audience import AudienceRules, RecordAudience
from datatorag.connectors.base import Source, SourceAuthError, SourceEntry
from datatorag.connectors.config import (
    FolderSourceConfig,
    FtpSourceConfig,
    RipplingSourceConfig,
    S3SourceConfig,
    SftpSourceConfig,
    SourceConfig,
    SourcesConfig,
    WorkdaySourceConfig,
    _RecordAudience,
)
from datatorag.connectors.folder import FolderSource
from datatorag.connectors.ftp import FtpSettings, FtpSource
from datatorag.connectors.retry import Backoff
from datatorag.connectors.rippling import RipplingSettings, RipplingSource
from datatorag.connectors.s3 import S3Settings, S3Source
from datatorag.connectors.scheduler import ScheduledSource
from datatorag.connectors.secrets import SecretError, SecretResolver
from datatorag.connectors.sftp import SftpSettings, SftpSource
from datatorag.connectors.sync import SyncOptions
from datatorag.connectors.workday import Report, Resource, WorkdaySettings, WorkdaySource
from datatorag.observability.log import get_logger

if TYPE_CHECKING:  # imported where used: aiobotocore loads only for the AWS sources
    from datatorag.adapters.aws.session import AwsClients

log = get_logger("connector.builder")

T = TypeVar("T")


class BrokenSource(Source):
    """Stands in for a source that could not be built; every sync fails with ``reason``."""

    kind = "broken"

    def __init__(self, id: str, tenant: str, kind: str, reason: str, code: str) -> None:
        super().__init__(id, tenant)
        self.kind = kind
        self.reason = reason
        self.code = code

    def list(self) -> AsyncIterator[SourceEntry]:
        return _Raising(SourceAuthError(self.reason, code=self.code))

    def fetch(self, entry: SourceEntry) -> AsyncIterator[bytes]:
        return _Raising(SourceAuthError(self.reason, code=self.code))


class _Raising(AsyncIterator[T]):
    """An async iterator whose first step raises ``error``."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def __anext__(self) -> T:
        raise self.error


def _record_audience(cfg: _RecordAudience) -> RecordAudience:
    return RecordAudience(
        cfg.audience_field,
        cfg.confidential_field,
        tuple(cfg.confidential_audience) if cfg.confidential_audience is not None else None,
    )


async def build_source(
    tenant: str,
    cfg: SourceConfig,
    resolver: SecretResolver,
    *,
    aws_clients: AwsClients | None = None,
) -> Source:
    """One configured source as a Source; raises ``SecretError`` when a secret is unavailable."""
    source = await _build(tenant, cfg, resolver, aws_clients=aws_clients)
    source.audience = AudienceRules.build(
        cfg.audience, [(rule.path, rule.groups) for rule in cfg.audience_rules]
    )
    return source


async def _build(
    tenant: str,
    cfg: SourceConfig,
    resolver: SecretResolver,
    *,
    aws_clients: AwsClients | None = None,
) -> Source:
    secret = resolver.resolve
    optional = resolver.resolve_optional
    if isinstance(cfg, FolderSourceConfig):
        return FolderSource(
            cfg.id,
            tenant,
            cfg.path,
            include=cfg.include,
            exclude=cfg.exclude,
            follow_symlinks=cfg.follow_symlinks,
            max_concurrency=cfg.max_concurrency or 4,
            upload_audience=cfg.upload_audience,
        )
    if isinstance(cfg, FtpSourceConfig):
        settings = FtpSettings(
            host=cfg.host,
            port=cfg.port,
            username=cfg.username,
            password=await optional(cfg.password),
            root=cfg.root,
            tls="none" if cfg.type == "ftp" else cfg.tls_mode,
            verify_tls=cfg.verify_tls,
            ca_file=str(cfg.ca_file) if cfg.ca_file else None,
            list_command=cfg.list_command,
            connect_timeout_s=cfg.connect_timeout_s,
            socket_timeout_s=cfg.timeout_s,
            max_connections=cfg.max_connections,
            backoff=Backoff(attempts=cfg.retries),
            include=cfg.include,
            exclude=cfg.exclude,
        )
        return FtpSource(cfg.id, tenant, settings, max_concurrency=cfg.max_concurrency)
    if isinstance(cfg, SftpSourceConfig):
        settings_sftp = SftpSettings(
            host=cfg.host,
            port=cfg.port,
            username=cfg.username,
            password=await optional(cfg.password),
            private_key=await optional(cfg.private_key),
            private_key_passphrase=await optional(cfg.private_key_passphrase),
            known_hosts=str(cfg.known_hosts) if cfg.known_hosts else None,
            host_key_checking=cfg.host_key_checking,
            root=cfg.root,
            connect_timeout_s=cfg.connect_timeout_s,
            max_connections=cfg.max_connections,
            backoff=Backoff(attempts=cfg.retries),
            include=cfg.include,
            exclude=cfg.exclude,
        )
        return SftpSource(cfg.id, tenant, settings_sftp, max_concurrency=cfg.max_concurrency)
    if isinstance(cfg, S3SourceConfig):
        settings_s3 = S3Settings(
            bucket=cfg.bucket,
            prefix=cfg.prefix,
            region=cfg.region,
            endpoint_url=cfg.endpoint_url,
            access_key_id=await optional(cfg.access_key_id),
            secret_access_key=await optional(cfg.secret_access_key),
            include=cfg.include,
            exclude=cfg.exclude,
            upload_audience=cfg.upload_audience,
        )
        return S3Source(
            cfg.id,
            tenant,
            settings_s3,
            max_concurrency=cfg.max_concurrency or 8,
            clients=aws_clients if not cfg.access_key_id and not cfg.endpoint_url else None,
        )
    if isinstance(cfg, WorkdaySourceConfig):
        settings_wd = WorkdaySettings(
            base_url=str(cfg.base_url).rstrip("/"),
            tenant_name=cfg.tenant_name,
            client_id=cfg.client_id,
            client_secret=await secret(cfg.client_secret),
            refresh_token=await secret(cfg.refresh_token),
            token_url=str(cfg.token_url) if cfg.token_url else None,
            reports=[
                Report(
                    r.name, r.path, dict(r.params), r.id_field, r.title_field, _record_audience(r)
                )
                for r in cfg.reports
            ],
            resources=[
                Resource(r.name, r.path, r.id_field, r.title_field, _record_audience(r))
                for r in cfg.resources
            ],
            page_size=cfg.page_size,
            timeout_s=cfg.timeout_s,
            retries=cfg.retries,
        )
        return WorkdaySource(cfg.id, tenant, settings_wd, max_concurrency=cfg.max_concurrency or 4)
    if isinstance(cfg, RipplingSourceConfig):
        settings_rp = RipplingSettings(
            token=await secret(cfg.token),
            base_url=str(cfg.base_url).rstrip("/"),
            resources=list(cfg.resources),
            title_fields=list(cfg.title_fields),
            page_size=cfg.page_size,
            api_version=cfg.api_version,
            timeout_s=cfg.timeout_s,
            retries=cfg.retries,
            audience=_record_audience(cfg),
        )
        return RipplingSource(cfg.id, tenant, settings_rp, max_concurrency=cfg.max_concurrency or 4)
    raise TypeError(f"unknown source configuration {type(cfg).__name__}")  # pragma: no cover


def schedule_for(cfg: SourceConfig, source: Source) -> ScheduledSource:
    return ScheduledSource(
        source=source,
        interval_s=cfg.interval_s,
        jitter_s=cfg.jitter_s,
        options=SyncOptions(delete_grace_s=cfg.delete_grace_s),
        enabled=cfg.enabled,
    )


async def build_schedules(
    config: SourcesConfig,
    resolver: SecretResolver,
    *,
    aws_clients: AwsClients | None = None,
) -> list[ScheduledSource]:
    """Every configured source, ready for ``Scheduler.add_all``."""
    out: list[ScheduledSource] = []
    for tenant, cfg in config.items():
        try:
            source = await build_source(tenant, cfg, resolver, aws_clients=aws_clients)
        except (SecretError, ValueError) as exc:
            code = "secret_unresolved" if isinstance(exc, SecretError) else "bad_config"
            log.error("source_not_built", tenant=tenant, source=cfg.id, code=code, reason=str(exc))
            source = BrokenSource(cfg.id, tenant, cfg.type, str(exc), code)
        out.append(schedule_for(cfg, source))
    return out
