"""Request context for every HTTP request: a request id (``X-Request-ID``, also bound into every
log line through structlog contextvars), an access log line, Prometheus metrics, a body-size limit,
and the last line of defence that turns an unexpected exception into a JSON 500."""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from datatorag.gateway.metrics import observe
from datatorag.observability.log import get_logger

log = get_logger("gateway.access")

_PROBES = frozenset({"/healthz", "/readyz", "/metrics"})
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


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
    def __init__(
        self, app: ASGIApp, *, max_body_bytes: int, unlimited_paths: frozenset[str] = frozenset()
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.unlimited_paths = unlimited_paths

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
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-request-id", request_id.encode("latin-1")),
                ]
            await send(message)

        tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            length = headers.get(b"content-length")
            if (
                length is not None
                and scope["path"] not in self.unlimited_paths
                and length.isdigit()
                and int(length) > self.max_body_bytes
            ):
                start, body = _json(
                    413,
                    "too_large",
                    f"request body over {self.max_body_bytes} bytes",
                    request_id,
                )
                await send_wrapper(start)
                await send_wrapper({"type": "http.response.body", "body": body})
                return
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
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            observe(template, method, status, elapsed)
            (log.debug if template in _PROBES else log.info)(
                "request",
                method=method,
                route=template,
                status=status,
                duration_ms=round(elapsed * 1000, 2),
                tenant=state.get("tenant"),
            )
            structlog.contextvars.reset_contextvars(**tokens)
