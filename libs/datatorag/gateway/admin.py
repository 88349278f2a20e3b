"""Who may call the admin endpoints (delete, reindex).

``require_admin`` is the one gate every admin route goes through. Until principals with roles
land (issue 12), an admin is a caller whose API key is listed in ``DATATORAG_ADMIN_API_KEYS``;
with roles, this function becomes ``principal.role == "admin"`` and nothing else changes.
A valid key that is not an admin's gets 403; no key or a bad one 401 (from ``require_tenant``).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from datatorag.gateway.auth import require_tenant
from datatorag.gateway.errors import ApiError


@dataclass(frozen=True)
class Admin:
    tenant: str
    who: str  # recorded with what the admin did; names the key without revealing it


def _presented_key(request: Request) -> str:
    auth = (request.headers.get("authorization") or "").strip()
    if auth:
        return auth.partition(" ")[2].strip()
    return (request.headers.get("x-api-key") or "").strip()


async def require_admin(request: Request, tenant: Annotated[str, Depends(require_tenant)]) -> Admin:
    settings = request.app.state.deps.settings
    admins = [k.strip().encode() for k in settings.admin_api_keys.split(",") if k.strip()]
    key = _presented_key(request).encode("utf-8", "surrogateescape")
    allowed = False
    for known in admins:  # no early exit: timing does not reveal which key
        allowed |= hmac.compare_digest(known, key)
    if not allowed:
        raise ApiError(403, "this API key may not use admin endpoints", code="forbidden")
    return Admin(tenant=tenant, who=f"key:{hashlib.sha256(key).hexdigest()[:12]}")
