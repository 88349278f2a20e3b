"""``POST /v1/documents``: an upload lands where the tenant's ``uploads`` source picks it up, and
that source is synced at once, so an upload is indexed exactly like a file on the FTP server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from libs.connectors.landing import LandingZone
from libs.errors import PermanentError
from libs.gateway.errors import ApiError

UPLOADS_SOURCE = "uploads"
_STATUS = {"too_large": 413, "empty_file": 400, "unsupported_type": 415, "bad_filename": 400}

Trigger = Callable[[str, str], Awaitable[Any]]


def upload_hook(landing: LandingZone, trigger: Trigger):
    async def on_upload(tenant: str, filename: str, data: bytes, content_type: str | None) -> dict:
        async def body() -> AsyncIterator[bytes]:
            yield data

        try:
            landed = await landing.receive(tenant, filename, body())
        except PermanentError as exc:
            raise ApiError(_STATUS.get(exc.code, 400), exc.reason, code=exc.code) from exc
        await trigger(tenant, UPLOADS_SOURCE)
        return {"key": landed.key, "filename": landed.filename, "size": landed.size,
                "sha256": landed.sha256, "content_type": landed.content_type,
                "source": UPLOADS_SOURCE}

    return on_upload
