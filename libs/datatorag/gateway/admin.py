"""Who may call the admin endpoints (upload, delete, sync, reindex, keys).

``require_admin`` is the one gate every admin route goes through: the principal's role. A valid
credential without the admin role gets 403; none or a bad one 401 (from ``require_principal``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from datatorag.domain.principal import Principal
from datatorag.gateway.auth import Caller
from datatorag.gateway.errors import ApiError


async def require_admin(principal: Caller) -> Principal:
    if not principal.is_admin:
        raise ApiError(403, "this caller may not use admin endpoints", code="forbidden")
    return principal


Admin = Annotated[Principal, Depends(require_admin)]
