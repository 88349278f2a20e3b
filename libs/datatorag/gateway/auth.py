"""Credentials -> principals. The principal (and so the tenant) of every request comes from here
and nowhere else.

A credential travels in ``Authorization: Bearer <credential>`` or ``X-API-Key: <key>`` (REST
headers and gRPC metadata alike) and is one of:

* a registry key ``dtr_<key_id>_<secret>`` (``datatorag keys create``; ``gateway.api_keys``);
* an OIDC token (a JWT) from the configured issuer (``gateway.oidc``);
* a static key of ``DATATORAG_API_KEYS``: plain in embedded mode (the dev default), otherwise
  given only as ``sha256:<hex>`` digests, so the environment never holds a usable key.

Static keys are compared by their SHA-256 in constant time, every one of them (no early exit).
The edge middleware (``gateway.edge``) authenticates from the headers before any body is read
and leaves the principal in ``request.state``; ``require_principal`` hands it to the routes.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from datatorag.config import ConfigError, Mode, Settings
from datatorag.domain.principal import Principal
from datatorag.gateway.api_keys import KeyRejected, RegistryKeys, looks_like_registry_key
from datatorag.gateway.errors import ApiError
from datatorag.gateway.oidc import OidcVerifier, TokenRejected, looks_like_jwt
from datatorag.ports import Registry

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="datatorag"'}
_DIGEST = re.compile(r"^sha256:([0-9a-fA-F]{64})$")


class AuthError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def key_subject(key: bytes) -> str:
    """Names a static key in logs and audit records without revealing it."""
    return f"key:{hashlib.sha256(key).hexdigest()[:12]}"


@dataclass(frozen=True, slots=True)
class _StaticKey:
    digest: bytes  # SHA-256 of the key
    tenant: str
    admin: bool


def _digest_of(entry: str, *, plain_allowed: bool, variable: str, n: int, total: int) -> bytes:
    match = _DIGEST.match(entry)
    if match is not None:
        return bytes.fromhex(match.group(1))
    if entry.lower().startswith("sha256:"):
        raise ConfigError(
            f"{variable}: entry {n} of {total} is not sha256:<64 hex digits>"
            " (the value is not shown: it holds a key)"
        )
    if not plain_allowed:
        raise ConfigError(
            f"{variable}: entry {n} of {total} is a plain key; outside embedded mode give its"
            " digest, sha256:<hex> (`datatorag keys hash` prints it), or use"
            " `datatorag keys create` (the value is not shown)"
        )
    return hashlib.sha256(entry.encode()).digest()


class StaticKeys:
    """``DATATORAG_API_KEYS`` / ``DATATORAG_ADMIN_API_KEYS``, parsed once at startup."""

    def __init__(self, keys: list[_StaticKey]) -> None:
        self._keys = keys

    @classmethod
    def from_settings(cls, settings: Settings) -> StaticKeys:
        """``ConfigError`` for a malformed value; its message never contains a key."""
        plain = settings.mode is Mode.EMBEDDED
        pairs = settings.tenant_for_key()
        admins_raw = [a.strip() for a in settings.admin_api_keys_value().split(",") if a.strip()]
        admins = {
            _digest_of(
                a,
                plain_allowed=plain,
                variable="DATATORAG_ADMIN_API_KEYS",
                n=n,
                total=len(admins_raw),
            )
            for n, a in enumerate(admins_raw, 1)
        }
        keys = []
        for n, (entry, tenant) in enumerate(pairs.items(), 1):
            digest = _digest_of(
                entry, plain_allowed=plain, variable="DATATORAG_API_KEYS", n=n, total=len(pairs)
            )
            keys.append(_StaticKey(digest, tenant, digest in admins))
        known = {k.digest for k in keys}
        if admins - known:
            raise ConfigError(
                "DATATORAG_ADMIN_API_KEYS names a key that DATATORAG_API_KEYS does not have"
                " (the value is not shown)"
            )
        return cls(keys)

    def principal(self, key: str) -> Principal | None:
        candidate = hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()
        found = None
        for known in self._keys:  # no early exit: timing does not reveal which
            if hmac.compare_digest(known.digest, candidate):
                found = Principal(
                    known.tenant,
                    f"key:{known.digest.hex()[:12]}",
                    role="admin" if known.admin else "reader",
                )
        return found


def credential_of(authorization: str | None, x_api_key: str | None) -> str:
    """The one credential these header values carry, or ``AuthError`` saying what is wrong."""
    bearer = None
    if authorization is not None and authorization.strip():
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise AuthError("the Authorization header must be 'Bearer <credential>'")
        bearer = value.strip()
    header_key = x_api_key.strip() if x_api_key and x_api_key.strip() else None
    if bearer and header_key and bearer != header_key:
        raise AuthError("two different credentials sent (Authorization and X-API-Key); send one")
    credential = bearer or header_key
    if credential is None:
        raise AuthError(
            "missing credentials: send 'Authorization: Bearer <API key or token>' or 'X-API-Key'"
        )
    if len(credential) > 16_384:
        raise AuthError("credential too long")
    return credential


class Authenticator:
    """Every way in: static keys, registry keys, OIDC tokens."""

    def __init__(
        self,
        static: StaticKeys,
        registry_keys: RegistryKeys | None = None,
        oidc: OidcVerifier | None = None,
    ) -> None:
        self.static = static
        self.registry_keys = registry_keys
        self.oidc = oidc

    @classmethod
    def from_settings(cls, settings: Settings, registry: Registry | None = None) -> Authenticator:
        """``ConfigError`` for unusable settings (never naming a secret)."""
        static = StaticKeys.from_settings(settings)
        keys = (
            RegistryKeys(registry, cache_s=settings.api_key_cache_s)
            if registry is not None
            else None
        )
        oidc = OidcVerifier.from_settings(settings.oidc) if settings.oidc.issuer else None
        return cls(static, keys, oidc)

    async def authenticate(self, authorization: str | None, x_api_key: str | None) -> Principal:
        """The principal for these header values, or ``AuthError`` with the reason. A registry
        or JWKS that cannot be reached raises ``DependencyError`` (503, not 401)."""
        credential = credential_of(authorization, x_api_key)
        if looks_like_registry_key(credential) and self.registry_keys is not None:
            try:
                return await self.registry_keys.principal(credential)
            except KeyRejected as exc:
                raise AuthError(str(exc)) from None
        if looks_like_jwt(credential):
            if self.oidc is None:
                raise AuthError("a JWT was sent but this gateway has no OIDC issuer configured")
            try:
                return await self.oidc.principal(credential)
            except TokenRejected as exc:
                raise AuthError(f"invalid token: {exc}") from None
        principal = self.static.principal(credential)
        if principal is None:
            raise AuthError("invalid API key")
        return principal

    async def aclose(self) -> None:
        if self.oidc is not None:
            await self.oidc.aclose()


# Declared for the OpenAPI docs ("Authorize" button); the raw headers are read by the edge
# middleware so a malformed header gets a precise 401 instead of being ignored.
_bearer = HTTPBearer(auto_error=False, description="API key or OIDC token as a bearer token")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key")


async def require_principal(
    request: Request,
    _b: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
    _k: Annotated[str | None, Security(_api_key)] = None,
) -> Principal:
    principal = request.scope.get("state", {}).get("principal")
    if not isinstance(principal, Principal):  # a route the edge does not guard: a wiring bug
        raise ApiError(401, "missing credentials", headers=CHALLENGE)
    return principal


# Every route that reads takes a ``Caller``; every route that changes a tenant's documents an
# ``Admin`` (see gateway.admin).
Caller = Annotated[Principal, Depends(require_principal)]
