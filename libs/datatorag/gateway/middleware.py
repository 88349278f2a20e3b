"""Request context for every HTTP request: a request id (``X-Request-ID``, also bound into every
log line through structlog contextvars), the audit line (``gateway.audit``; probes get a debug
access line instead), Prometheus metrics, security headers on every response, and the last line
of defence that turns an unexpected exception into a JSON 500. Authentication, rate limits and
body limits are the edge's (``gateway.edge``), inside this one."""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

import structlog
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from datatorag.gateway import audit
from datatorag.gateway.metrics import observe
from datatorag.observability.log import get_logger

log = get_logger("gateway.access")

_PROBES = frozenset({"/healthz", "/readyz", "/metrics"})
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# An API answers JSON to programs: nothing to sniff, frame, refer or cache. The docs page
# (Swagger UI) loads its script and style from a CDN, so it gets no Content-Security-Policy.
_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"strict-transport-security", b"max-age=31536000; includeSubDomains"),
]
_API_HEADERS = [
    (b"cache-control", b"no-store"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
]


def _json(status: int, code: str, message: str, request_id: str) -> tuple[dict[str, Any], bytes]:
    body = json.dumps({"error": {"code": code, "message": message, "request_id": request_id}})
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
    }
    return start, body.encode()


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or ())
        incoming = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        method = scope["method"]
        path = scope["path"]
        entry, audit_token = audit.open_entry()
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message.setdefault("headers", [])
                extra = (
                    _SECURITY_HEADERS
                    if path.startswith("/docs")
                    else _SECURITY_HEADERS + _API_HEADERS
                )
                message["headers"] = [
                    *message["headers"],
                    *extra,
                    (b"x-request-id", request_id.encode("latin-1")),
                ]
            await send(message)

        tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            log.exception("unhandled error", method=method, path=scope["path"])
            if not response_started:
                start, body = _json(500, "internal_error", "internal error", request_id)
                await send_wrapper(start)
                await send_wrapper({"type": "http.response.body", "body": body})
            status = 500
        finally:
            elapsed = time.perf_counter() - started
            template = _template(scope)
            observe(template, method, status, elapsed)
            if template in _PROBES or path in _PROBES:
                log.debug(
                    "request",
                    method=method,
                    route=template,
                    status=status,
                    duration_ms=round(elapsed * 1000, 2),
                )
            else:
                client = scope.get("client")
                audit.emit(
                    entry,
                    transport="rest",
                    method=method,
                    route=template,
                    status=status,
                    duration_ms=round(elapsed * 1000, 2),
                    client=client[0] if client else None,
                )
            audit.close_entry(audit_token)
            structlog.contextvars.reset_contextvars(**tokens)


def _template(scope: Scope) -> str:
    """The route template of the request, also for one the edge refused before routing (so
    metrics and the audit line name ``/v1/search``, never a raw path)."""
    route = getattr(scope.get("route"), "path", None)
    if route:
        return str(route)
    path = scope["path"]
    for regex, template in _templates(scope.get("app")):
        if regex.match(path):
            return template
    return "unmatched"


def _templates(app: Any) -> list[tuple[re.Pattern[str], str]]:
    """The app's path templates (from its OpenAPI document, built once), most literal first."""
    if app is None or not hasattr(app, "openapi"):
        return []
    found: list[tuple[re.Pattern[str], str]] | None = getattr(app.state, "route_templates", None)
    if found is None:
        paths = sorted(app.openapi().get("paths", {}), key=lambda p: (p.count("{"), -len(p)))
        found = [(compile_path(p)[0], p) for p in paths]
        app.state.route_templates = found
    return found
