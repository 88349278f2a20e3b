"""API keys -> principals. The principal (and so the tenant) of every request comes from here and
nowhere else.

A key travels in ``Authorization: Bearer <key>`` or ``X-API-Key: <key>`` (REST headers and gRPC
metadata alike). Keys are compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from datatorag.config import Settings
from datatorag.domain.principal import Principal
from datatorag.gateway.errors import ApiError

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="datatorag"'}


class AuthError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def key_subject(key: bytes) -> str:
    """Names a key in logs and audit records without revealing it."""
    return f"key:{hashlib.sha256(key).hexdigest()[:12]}"


class ApiKeys:
    def __init__(
        self, key_to_tenant: Mapping[str, str], admin_keys: frozenset[str] = frozenset()
    ) -> None:
        self._keys = [(k.encode(), t, k in admin_keys) for k, t in key_to_tenant.items()]

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiKeys:
        admins = frozenset(k.strip() for k in settings.admin_api_keys.split(",") if k.strip())
        # malformed DATATORAG_API_KEYS fails at startup
        return cls(settings.tenant_for_key(), admins)

    def principal(self, key: str) -> Principal | None:
        candidate = key.encode("utf-8", "surrogateescape")
        found = None
        for known, tenant, admin in self._keys:  # no early exit: timing does not reveal which
            if hmac.compare_digest(known, candidate):
                found = Principal(tenant, key_subject(known), role="admin" if admin else "reader")
        return found

    def resolve(self, authorization: str | None, x_api_key: str | None) -> Principal:
        """The principal for these header values, or ``AuthError`` saying what is wrong."""
        bearer = None
        if authorization is not None and authorization.strip():
            scheme, _, value = authorization.strip().partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                raise AuthError("the Authorization header must be 'Bearer <api key>'")
            bearer = value.strip()
        header_key = x_api_key.strip() if x_api_key and x_api_key.strip() else None
        if bearer and header_key and bearer != header_key:
            raise AuthError("two different API keys sent (Authorization and X-API-Key); send one")
        key = bearer or header_key
        if key is None:
            raise AuthError("missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key'")
        principal = self.principal(key)
        if principal is None:
            raise AuthError("invalid API key")
        return principal


# Declared for the OpenAPI docs ("Authorize" button); the raw headers are parsed by ApiKeys so a
# malformed header gets a precise 401 instead of being ignored.
_bearer = HTTPBearer(auto_error=False, description="API key as a bearer token")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key")


async def require_principal(
    request: Request,
    _b: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
    _k: Annotated[str | None, Security(_api_key)] = None,
) -> Principal:
    keys: ApiKeys = request.app.state.api_keys
    try:
        principal = keys.resolve(
            request.headers.get("authorization"), request.headers.get("x-api-key")
        )
    except AuthError as exc:
        raise ApiError(401, exc.message, headers=_CHALLENGE) from None
    request.state.tenant = principal.tenant  # for the access log
    request.state.principal = principal
    return principal


# Every route that reads takes a ``Caller``; every route that changes a tenant's documents an
# ``Admin`` (see gateway.admin).
Caller = Annotated[Principal, Depends(require_principal)]
