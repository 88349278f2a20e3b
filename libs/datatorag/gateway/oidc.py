"""OIDC bearer tokens: a JWT from the company's identity provider, checked against its JWKS.

Checked: the signature with a key of the issuer's JWKS (found by ``kid``), the algorithm (one of
``DATATORAG_OIDC_ALGORITHMS``: never ``none``, never an HMAC one, which would let a public key
sign), ``iss``, ``aud``, ``exp``, ``nbf`` and ``iat`` (with ``leeway_s``), and that ``sub`` is
there. The JWKS is fetched (asynchronously, httpx) from ``DATATORAG_OIDC_JWKS_URL`` or the
issuer's discovery document, reused for ``jwks_cache_s``, and refetched when a token names a
``kid`` it does not hold (a rotation) - at most every ``jwks_refresh_min_s``, so tokens with
made-up ``kid`` values cannot hammer the issuer. A key the issuer rotated out is refused once the
cached JWKS no longer holds it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt

from datatorag.config import ConfigError, OidcSettings
from datatorag.domain.errors import DependencyError
from datatorag.domain.principal import Principal, Role

_SYMMETRIC = {"HS256", "HS384", "HS512"}


class TokenRejected(Exception):
    """Why a token is refused (the message goes to the client)."""


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("ey")


def _claim(claims: dict[str, Any], path: str) -> Any:
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _groups(value: Any) -> frozenset[str]:
    if value is None:
        return frozenset()
    if isinstance(value, str):
        return frozenset(g for g in value.replace(",", " ").split() if g)
    if isinstance(value, list):
        return frozenset(str(g) for g in value if isinstance(g, str | int) and str(g))
    raise TokenRejected("the groups claim is neither a list nor a string")


class JwksCache:
    def __init__(
        self,
        settings: OidcSettings,
        client: httpx.AsyncClient,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._client = client
        self._clock = clock
        self._url = settings.jwks_url
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    async def _jwks_url(self) -> str:
        if self._url is None:
            issuer = (self.settings.issuer or "").rstrip("/")
            doc = await self._get_json(f"{issuer}/.well-known/openid-configuration")
            url = doc.get("jwks_uri")
            if not isinstance(url, str) or not url:
                raise DependencyError("oidc discovery", "the discovery document has no jwks_uri")
            self._url = url
        return self._url

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            resp = await self._client.get(url)
            resp.raise_for_status()
            data = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise DependencyError("oidc issuer", f"{url}: {type(exc).__name__}") from exc
        if not isinstance(data, dict):
            raise DependencyError("oidc issuer", f"{url}: not a JSON object")
        return data

    async def _refresh(self) -> None:
        data = await self._get_json(await self._jwks_url())
        try:
            keyset = jwt.PyJWKSet.from_dict(data)
        except jwt.PyJWKSetError as exc:
            raise DependencyError("oidc jwks", f"unusable JWKS: {exc}") from exc
        self._keys = {k.key_id: k for k in keyset.keys if k.key_id}
        self._fetched_at = self._clock()

    async def key(self, kid: str) -> jwt.PyJWK:
        async with self._lock:
            now = self._clock()
            stale = self._fetched_at is None or now - self._fetched_at >= self.settings.jwks_cache_s
            if stale:
                await self._refresh()
            elif kid not in self._keys and (
                self._fetched_at is None
                or now - self._fetched_at >= self.settings.jwks_refresh_min_s
            ):
                await self._refresh()  # an unknown kid: perhaps a rotation
            found = self._keys.get(kid)
        if found is None:
            raise TokenRejected(f"unknown signing key (kid {kid[:64]!r})")
        return found


class OidcVerifier:
    def __init__(
        self,
        settings: OidcSettings,
        *,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        algorithms = self.check(settings)
        self.settings = settings
        self.algorithms = algorithms
        self.admin_groups = settings.admin_group_set()
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(timeout=settings.timeout_s)
        self.jwks = JwksCache(settings, self._client, clock)

    @staticmethod
    def check(settings: OidcSettings) -> list[str]:
        """The accepted algorithms; ``ConfigError`` for an incomplete or unsafe configuration."""
        if not settings.issuer:
            raise ConfigError("DATATORAG_OIDC_ISSUER is not set")
        if not settings.audience:
            raise ConfigError("DATATORAG_OIDC_AUDIENCE must be set with DATATORAG_OIDC_ISSUER")
        if not settings.tenant and not settings.tenant_claim:
            raise ConfigError(
                "OIDC needs the tenant: DATATORAG_OIDC_TENANT (fixed)"
                " or DATATORAG_OIDC_TENANT_CLAIM"
            )
        algorithms = settings.algorithm_list()
        bad = [a for a in algorithms if a.lower() == "none" or a.upper() in _SYMMETRIC]
        if not algorithms or bad:
            raise ConfigError(
                "DATATORAG_OIDC_ALGORITHMS must name asymmetric algorithms (RS256, ES256, ...)"
            )
        return algorithms

    @classmethod
    def from_settings(cls, settings: OidcSettings) -> OidcVerifier:
        return cls(settings)

    async def claims(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenRejected("malformed token") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise TokenRejected(f"algorithm {str(alg)[:16]!r} is not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenRejected("the token names no signing key (kid)")
        key = await self.jwks.key(kid)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=self.settings.audience,
                issuer=self.settings.issuer,
                leeway=self.settings.leeway_s,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenRejected("token expired") from None
        except jwt.ImmatureSignatureError:
            raise TokenRejected("token not yet valid") from None
        except jwt.InvalidIssuerError:
            raise TokenRejected("wrong issuer") from None
        except jwt.InvalidAudienceError:
            raise TokenRejected("wrong audience") from None
        except jwt.MissingRequiredClaimError as exc:
            raise TokenRejected(f"the token lacks the {exc.claim!r} claim") from None
        except jwt.InvalidSignatureError:
            raise TokenRejected("bad signature") from None
        except jwt.PyJWTError as exc:
            raise TokenRejected(type(exc).__name__) from None
        return claims

    async def principal(self, token: str) -> Principal:
        claims = await self.claims(token)
        settings = self.settings
        tenant = settings.tenant
        if settings.tenant_claim:
            value = _claim(claims, settings.tenant_claim)
            if not isinstance(value, str) or not value.strip():
                raise TokenRejected(f"the token lacks the tenant claim {settings.tenant_claim!r}")
            tenant = value.strip()
        assert tenant is not None  # checked in __init__
        groups = _groups(_claim(claims, settings.groups_claim))
        role: Role = "admin" if groups & self.admin_groups else "reader"
        return Principal(tenant, f"oidc:{claims['sub']}", groups, role=role)

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()
