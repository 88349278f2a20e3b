"""OIDC bearer tokens against a local identity provider: a real HTTP server (uvicorn) serving the
discovery document and a JWKS whose keys the tests rotate. Tokens are signed with real RSA/EC keys.

Every refusal is a 401 whose message says why: expired, not yet valid, wrong issuer, wrong
audience, ``alg: none`` (and an HMAC token signed with the public key), an unknown ``kid``, a key
the JWKS rotated out; an unreachable JWKS is a 503, not a 401.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import FastAPI
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from datatorag.config import OidcSettings, Settings
from datatorag.gateway import GatewayDeps, create_app
from datatorag.gateway.oidc import OidcVerifier, TokenRejected
from datatorag.runtime import UvicornServer
from datatorag.testing.memory import MemoryRegistry, MemoryVectorIndex
from datatorag.testing.memory.embedder import HashingEmbedder
from tests.servers.edge_gateway import free_port

AUDIENCE = "datatorag-gateway"


@dataclass
class Idp:
    """A local identity provider: discovery + JWKS, keys added and removed at will."""

    url: str
    keys: dict[str, Any] = field(default_factory=dict)  # kid -> private key
    published: list[str] = field(default_factory=list)  # kids in the JWKS
    jwks_hits: int = 0
    down: bool = False

    @property
    def issuer(self) -> str:
        return self.url

    def add_key(self, kid: str, kind: str = "rsa") -> None:
        key = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            if kind == "rsa"
            else ec.generate_private_key(ec.SECP256R1())
        )
        self.keys[kid] = key
        self.published.append(kid)

    def jwks(self) -> dict[str, Any]:
        out = []
        for kid in self.published:
            key = self.keys[kid]
            algo = RSAAlgorithm if isinstance(key, rsa.RSAPrivateKey) else ECAlgorithm
            jwk = json.loads(algo.to_jwk(key.public_key()))
            jwk.update({"kid": kid, "use": "sig"})
            out.append(jwk)
        return {"keys": out}

    def token(self, kid: str = "k1", alg: str | None = None, **claims: Any) -> str:
        key = self.keys[kid]
        alg = alg or ("RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256")
        now = int(time.time())
        body = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": "alice@acme.example",
            "iat": now,
            "exp": now + 300,
            "org": "acme",
            "realm_access": {"roles": ["hr", "managers"]},
            **claims,
        }
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(body, key, algorithm=alg, headers={"kid": kid})


@pytest.fixture
async def idp() -> AsyncIterator[Idp]:
    port = free_port()
    provider = Idp(url=f"http://127.0.0.1:{port}")
    provider.add_key("k1")
    app = FastAPI()

    @app.get("/.well-known/openid-configuration")
    async def discovery() -> dict[str, Any]:
        return {"issuer": provider.issuer, "jwks_uri": f"{provider.url}/jwks"}

    @app.get("/jwks")
    async def jwks() -> Any:
        provider.jwks_hits += 1
        if provider.down:
            from fastapi.responses import JSONResponse

            return JSONResponse({"error": "down"}, status_code=503)
        return provider.jwks()

    server = UvicornServer(app, "127.0.0.1", port)
    await server.start()
    yield provider
    await server.stop()


def _settings(idp: Idp, **over: Any) -> OidcSettings:
    values: dict[str, Any] = {
        "issuer": idp.issuer,
        "audience": AUDIENCE,
        "tenant_claim": "org",
        "groups_claim": "realm_access.roles",
        "admin_groups": "hr-admins",
        "jwks_refresh_min_s": 0,
        **over,
    }
    return OidcSettings(**values)


async def test_a_valid_token_is_its_principal(idp: Idp) -> None:
    verifier = OidcVerifier(_settings(idp))
    try:
        p = await verifier.principal(idp.token())
        assert (p.tenant, p.subject, p.role) == ("acme", "oidc:alice@acme.example", "reader")
        assert p.groups == {"hr", "managers"}
        admin = await verifier.principal(idp.token(realm_access={"roles": ["hr-admins"]}))
        assert admin.is_admin
        # a space-separated groups claim works too; the JWKS was fetched once
        spaced = await verifier.principal(idp.token(realm_access={"roles": "a b"}))
        assert spaced.groups == {"a", "b"} and idp.jwks_hits == 1
    finally:
        await verifier.aclose()


def _none_token(idp: Idp) -> str:
    def b64(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    now = int(time.time())
    claims = {"iss": idp.issuer, "aud": AUDIENCE, "sub": "x", "org": "acme", "exp": now + 60}
    return f"{b64({'alg': 'none', 'kid': 'k1'})}.{b64(claims)}."


def _hmac_with_public_key(idp: Idp) -> str:
    public = (
        idp.keys["k1"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    now = int(time.time())
    claims = {"iss": idp.issuer, "aud": AUDIENCE, "sub": "x", "org": "acme", "exp": now + 60}
    header = {"alg": "HS256", "kid": "k1", "typ": "JWT"}
    signing = (
        base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=")
        + b"."
        + base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
    )
    import hashlib
    import hmac

    sig = base64.urlsafe_b64encode(hmac.new(public, signing, hashlib.sha256).digest()).rstrip(b"=")
    return (signing + b"." + sig).decode()


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda idp: idp.token(exp=int(time.time()) - 120), "token expired"),
        (lambda idp: idp.token(nbf=int(time.time()) + 600), "token not yet valid"),
        (lambda idp: idp.token(iss="https://evil.example"), "wrong issuer"),
        (lambda idp: idp.token(aud="another-app"), "wrong audience"),
        (lambda idp: idp.token(exp=None), "lacks the 'exp' claim"),
        (lambda idp: idp.token(org=None), "lacks the tenant claim 'org'"),
        (_none_token, "algorithm 'none' is not accepted"),
        (_hmac_with_public_key, "algorithm 'HS256' is not accepted"),
        (lambda idp: idp.token()[:-6] + "AAAAAA", "bad signature"),
        (lambda idp: "eyJhbGciOiJSUzI1NiJ9.e30.e30", "names no signing key"),
        (lambda idp: "ey.not-a-token.x", "malformed token"),
    ],
)
async def test_bad_tokens_are_refused_with_a_reason(idp: Idp, make, reason) -> None:
    verifier = OidcVerifier(_settings(idp))
    try:
        with pytest.raises(TokenRejected, match=reason):
            await verifier.principal(make(idp))
    finally:
        await verifier.aclose()


async def test_unknown_kid_rotation_and_a_rotated_out_key(idp: Idp) -> None:
    verifier = OidcVerifier(_settings(idp, jwks_cache_s=0.5))
    try:
        old = idp.token("k1")
        assert (await verifier.principal(old)).tenant == "acme"
        # a kid no JWKS ever had
        idp.add_key("ghost")
        idp.published.remove("ghost")
        with pytest.raises(TokenRejected, match="unknown signing key"):
            await verifier.principal(idp.token("ghost"))
        # the issuer rotates: a new EC key is published; a token signed with it is accepted at
        # once (an unknown kid refetches the JWKS)
        idp.add_key("k2", kind="ec")
        assert (await verifier.principal(idp.token("k2"))).tenant == "acme"
        # then the old key is withdrawn: once the cached JWKS expires, its tokens are refused
        idp.published.remove("k1")
        await asyncio.sleep(0.6)
        with pytest.raises(TokenRejected, match="unknown signing key"):
            await verifier.principal(old)
        assert (await verifier.principal(idp.token("k2"))).subject == "oidc:alice@acme.example"
    finally:
        await verifier.aclose()


async def test_unknown_kids_do_not_hammer_the_issuer(idp: Idp) -> None:
    verifier = OidcVerifier(_settings(idp, jwks_refresh_min_s=60))
    try:
        await verifier.principal(idp.token())
        idp.add_key("ghost")
        idp.published.remove("ghost")
        for _ in range(20):
            with pytest.raises(TokenRejected):
                await verifier.principal(idp.token("ghost"))
        assert idp.jwks_hits == 1
    finally:
        await verifier.aclose()


async def _gateway(idp: Idp, **over: Any) -> Any:
    settings = Settings(
        oidc=_settings(idp, **over).model_dump(),
        rate_limit={"per_s": 1e6, "burst": 1e6, "auth_failure_burst": 1e6},
    )
    index = MemoryVectorIndex(dim=16)
    await index.ensure()
    return create_app(
        GatewayDeps(
            settings=settings,
            index=index,
            embedder=HashingEmbedder(dim=16),
            registry=MemoryRegistry(),
        )
    )


async def test_the_gateway_takes_oidc_tokens_and_says_why_not(idp: Idp) -> None:
    app = await _gateway(idp)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c:
        ok = await c.post(
            "/v1/search",
            json={"query": "leave"},
            headers={"Authorization": f"Bearer {idp.token()}"},
        )
        assert ok.status_code == 200, ok.text
        expired = await c.post(
            "/v1/search",
            json={"query": "leave"},
            headers={"Authorization": f"Bearer {idp.token(exp=int(time.time()) - 120)}"},
        )
        assert expired.status_code == 401
        assert expired.json()["error"]["message"] == "invalid token: token expired"
        # readers may not sync; a member of an admin group may (501: no sync hook here)
        reader = {"Authorization": f"Bearer {idp.token()}"}
        admin = {"Authorization": f"Bearer {idp.token(realm_access={'roles': ['hr-admins']})}"}
        assert (await c.post("/v1/sources/hr/sync", headers=reader)).status_code == 403
        assert (await c.post("/v1/sources/hr/sync", headers=admin)).status_code == 501
        # the JWKS cannot be reached: 503 (try again), not 401 (your token is bad)
        idp.down = True
        idp.add_key("k9")
        down = await c.post(
            "/v1/search",
            json={"query": "leave"},
            headers={"Authorization": f"Bearer {idp.token('k9')}"},
        )
        assert down.status_code == 503 and down.headers["retry-after"]
