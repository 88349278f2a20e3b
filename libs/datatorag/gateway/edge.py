"""The gateway's edge: what every request goes through before a route sees it.

In order, from the headers alone (no body byte has been read yet):

1. a client address that failed authentication too often is refused (429, ``Retry-After``);
2. the credentials are resolved to a principal (``gateway.auth``), or 401 with the reason (and
   the failure drawn from the address's bucket);
3. the principal's token bucket (429, ``Retry-After``);
4. a body of the wrong media type is 415 (JSON routes take ``application/json``, the upload
   ``multipart/form-data``), a declared ``Content-Length`` over the limit 413;

then, while the body streams in (chunked or not), it is counted and cut off at the limit (413)
or at ``DATATORAG_GATEWAY_BODY_TIMEOUT_S`` (408): nothing is buffered past the limit, and a
client that is not authenticated never gets a byte read. gRPC goes through the same ``Edge``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from datatorag.config import ConfigError, Mode, Settings
from datatorag.domain.errors import DependencyError, TransientError
from datatorag.domain.principal import Principal
from datatorag.gateway import audit
from datatorag.gateway.auth import CHALLENGE, Authenticator, AuthError, StaticKeys
from datatorag.gateway.errors import dependency_kind
from datatorag.gateway.oidc import OidcVerifier
from datatorag.gateway.ratelimit import Limiter, Rate, limiter_for
from datatorag.observability.log import get_logger
from datatorag.ports import Registry

log = get_logger("gateway.edge")

# no credentials needed: probes, metrics and the API's own description
PUBLIC_PATHS = frozenset(
    {"/healthz", "/readyz", "/metrics", "/docs", "/docs/oauth2-redirect", "/openapi.json"}
)
UPLOAD_PATH = "/v1/documents"
# multipart framing around an upload's bytes (boundaries, part headers)
_MULTIPART_OVERHEAD = 64 * 1024
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class Refusal(Exception):
    """A request the edge answers itself."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def check_settings(settings: Settings) -> None:
    """Everything about the edge that can be wrong in the configuration, checked before any
    model loads or store opens. ``ConfigError`` never names a secret."""
    StaticKeys.from_settings(settings)  # static keys parse (never echoed)
    if settings.mode is not Mode.EMBEDDED and settings.service_token is None:
        raise ConfigError(
            "DATATORAG_SERVICE_TOKEN must be set outside embedded mode: the connector and"
            " embedder refuse internal calls without it"
        )
    if settings.service_token is not None and len(settings.service_token.get_secret_value()) < 16:
        raise ConfigError("DATATORAG_SERVICE_TOKEN must be at least 16 characters")
    if settings.oidc.issuer:
        OidcVerifier.check(settings.oidc)  # raises for an incomplete OIDC configuration
    url = settings.edge_redis_url.get_secret_value() if settings.edge_redis_url else None
    if url is not None and not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError("DATATORAG_EDGE_REDIS_URL must be a redis://, rediss:// or unix:// URL")


@dataclass
class Edge:
    authenticator: Authenticator
    limiter: Limiter
    principal_rate: Rate
    failure_rate: Rate
    limits_on: bool = True

    @classmethod
    def from_settings(cls, settings: Settings, registry: Registry | None) -> Edge:
        rl = settings.rate_limit
        return cls(
            authenticator=Authenticator.from_settings(settings, registry),
            limiter=limiter_for(
                settings.edge_redis_url.get_secret_value() if settings.edge_redis_url else None
            ),
            principal_rate=Rate(rl.per_s, rl.burst),
            failure_rate=Rate(rl.auth_failures_per_min / 60.0, rl.auth_failure_burst),
            limits_on=rl.enabled,
        )

    async def admit(
        self, authorization: str | None, x_api_key: str | None, client: str | None
    ) -> Principal:
        """The principal of a request, or ``Refusal``."""
        address = f"authfail:{client or 'unknown'}"
        if self.limits_on:
            blocked = await self.limiter.peek(address, self.failure_rate)
            if not blocked.allowed:
                raise Refusal(
                    429,
                    "too_many_requests",
                    "too many failed authentications from this address; retry later",
                    {"Retry-After": blocked.retry_after_header},
                )
        try:
            principal = await self.authenticator.authenticate(authorization, x_api_key)
        except AuthError as exc:
            if self.limits_on:
                await self.limiter.take(address, self.failure_rate)
            raise Refusal(401, "unauthenticated", exc.message, CHALLENGE) from None
        except DependencyError as exc:
            log.error("authentication backend failed", dependency=exc.dependency, detail=exc.detail)
            raise Refusal(
                503,
                "unavailable",
                f"{dependency_kind(exc.dependency)} is unavailable; try again later",
                {"Retry-After": "5"},
            ) from None
        except TransientError:
            raise Refusal(
                503,
                "unavailable",
                "authentication is unavailable; try again later",
                {"Retry-After": "5"},
            ) from None
        if self.limits_on:
            decision = await self.limiter.take(
                f"p:{principal.tenant}:{principal.subject}", self.principal_rate
            )
            if not decision.allowed:
                raise Refusal(
                    429,
                    "too_many_requests",
                    "rate limit exceeded for this caller; retry later",
                    {"Retry-After": decision.retry_after_header},
                )
        return principal

    async def aclose(self) -> None:
        await self.limiter.aclose()
        await self.authenticator.aclose()


def _media_type(headers: dict[bytes, bytes]) -> str:
    raw = headers.get(b"content-type", b"").decode("latin-1")
    return raw.split(";", 1)[0].strip().lower()


def _has_body(headers: dict[bytes, bytes]) -> bool:
    length = headers.get(b"content-length")
    if length is not None:
        return length.strip() not in (b"", b"0")
    return b"transfer-encoding" in headers


async def reply(
    send: Send,
    status: int,
    code: str,
    message: str,
    request_id: str | None,
    headers: dict[str, str],
) -> None:
    body = json.dumps(
        {"error": {"code": code, "message": message, "request_id": request_id}}
    ).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class EdgeMiddleware:
    """ASGI: authentication, rate limits, media types and streamed body limits (see above)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        edge: Edge,
        max_json_bytes: int,
        max_upload_bytes: int,
        body_timeout_s: float,
    ) -> None:
        self.app = app
        self.edge = edge
        self.max_json_bytes = max_json_bytes
        self.max_upload_bytes = max_upload_bytes + _MULTIPART_OVERHEAD
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        request_id = state.get("request_id")
        entry = audit.current()
        headers = dict(scope.get("headers") or ())
        client = scope.get("client")
        try:
            principal = await self.edge.admit(
                _header(headers, b"authorization"),
                _header(headers, b"x-api-key"),
                client[0] if client else None,
            )
        except Refusal as refusal:
            if entry is not None:
                entry.reason = refusal.message
            headers_out = {**refusal.headers, **_close_if_body(headers)}
            await reply(
                send, refusal.status, refusal.code, refusal.message, request_id, headers_out
            )
            return
        state["principal"] = principal
        state["tenant"] = principal.tenant
        if entry is not None:
            entry.principal = principal
        if scope["method"] in _BODY_METHODS and _has_body(headers):
            upload = scope["path"] == UPLOAD_PATH
            wanted = "multipart/form-data" if upload else "application/json"
            media = _media_type(headers)
            if media != wanted and not (not upload and media.endswith("+json")):
                message = f"send the body as {wanted}" + (f", not {media}" if media else "")
                await reply(send, 415, "unsupported_media_type", message, request_id, _CLOSE)
                return
            limit = self.max_upload_bytes if upload else self.max_json_bytes
            length = headers.get(b"content-length")
            if length is not None and (not length.strip().isdigit() or int(length) > limit):
                await reply(
                    send, 413, "too_large", f"request body over {limit} bytes", request_id, _CLOSE
                )
                return
            guarded = _Guarded(send, request_id)
            await self.app(scope, self._bounded(receive, guarded, limit), guarded.app_send)
            return
        await self.app(scope, receive, send)

    def _bounded(
        self, receive: Receive, guarded: _Guarded, limit: int
    ) -> Callable[[], Awaitable[Message]]:
        """``receive`` that counts the body and cuts it off at ``limit`` bytes or at the body
        timeout: the edge answers (413 / 408) and the app sees a disconnect."""
        deadline = time.monotonic() + self.body_timeout_s
        received = 0
        cut = False

        async def bounded_receive() -> Message:
            nonlocal received, cut
            if cut:
                return {"type": "http.disconnect"}
            try:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    message = await receive()
            except TimeoutError:
                cut = True
                await guarded.refuse(408, "timeout", "the request body did not arrive in time")
                return {"type": "http.disconnect"}
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    cut = True
                    await guarded.refuse(413, "too_large", f"request body over {limit} bytes")
                    return {"type": "http.disconnect"}
            return message

        return bounded_receive


class _Guarded:
    """One request's ``send``, shared by the app and the edge: once the edge has answered
    (413, 408) the app's messages go nowhere; once the app has started its response the edge
    does not answer over it."""

    def __init__(self, send: Send, request_id: str | None) -> None:
        self.send = send
        self.request_id = request_id
        self.started = False
        self.refused = False

    async def app_send(self, message: Message) -> None:
        if self.refused:
            return
        if message["type"] == "http.response.start":
            self.started = True
        await self.send(message)

    async def refuse(self, status: int, code: str, message: str) -> None:
        if self.started or self.refused:
            return
        self.refused = True
        await reply(self.send, status, code, message, self.request_id, {"Connection": "close"})


# a body the edge will not read: the connection is closed after the reply, so the server does
# not go on receiving (and discarding) it
_CLOSE = {"Connection": "close"}


def _close_if_body(headers: dict[bytes, bytes]) -> dict[str, str]:
    return _CLOSE if _has_body(headers) else {}


def _header(headers: dict[bytes, bytes], name: bytes) -> str | None:
    value = headers.get(name)
    return None if value is None else value.decode("latin-1")
