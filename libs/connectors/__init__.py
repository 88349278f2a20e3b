"""Connectors: sources (folder, FTP/FTPS, SFTP, S3 landing zone, Workday, Rippling), the sync
engine that turns a source into an incremental feed of ``DocumentFetched`` messages, the per-tenant
sources configuration and the scheduler."""

from libs.connectors.base import (
    Source,
    SourceAuthError,
    SourceEntry,
    SourceError,
    SourceUnavailable,
)

__all__ = ["Source", "SourceAuthError", "SourceEntry", "SourceError", "SourceUnavailable"]
