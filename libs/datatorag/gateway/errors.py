"""One JSON error shape for every failure:
``{"error": {"code", "message", "request_id", "details"}}``.

Invalid requests are 4xx with a message that says what to fix; a dependency that is down is a
503 (a full disk: 507); anything unexpected is a 500 that names no internals (the traceback goes
to the log).
"""

from __future__ import annotations

import errno
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from datatorag.domain.errors import (
    DependencyError,
    InsufficientStorage,
    NotFound,
    PermanentError,
    TransientError,
)
from datatorag.observability.log import get_logger
from datatorag.runtime import redact

log = get_logger(__name__)

_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    408: "timeout",
    413: "too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
    500: "internal_error",
    501: "not_implemented",
    503: "unavailable",
    504: "timeout",
    507: "insufficient_storage",
}


class ApiError(Exception):
    """Raised by request handling (REST and gRPC alike) for a precise client-facing failure."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or _CODES.get(status, "error")
        self.details = details
        self.headers = headers


def dependency_kind(dependency: str) -> str:
    """What a client may read of a ``DependencyError``'s dependency: its kind, not its location
    ("lancedb:/srv/data/lancedb" names a local path)."""
    return redact(dependency.split(":", 1)[0])


def request_id_of(request: Request) -> str | None:
    request_id: str | None = request.scope.get("state", {}).get("request_id")
    return request_id


def error_response(
    request: Request | None,
    status: int,
    message: str,
    *,
    code: str | None = None,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "code": code or _CODES.get(status, "error"),
        "message": message,
        "request_id": request_id_of(request) if request is not None else None,
    }
    if details:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def validation_details(errors: Any) -> tuple[str, list[dict[str, Any]]]:
    """Pydantic errors as ``[{field, message, type}]`` plus a one-line summary. The offending
    input is not echoed back (it may be large or sensitive)."""
    details = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        field = ".".join(loc) or "body"
        message = str(err.get("msg", "invalid"))
        if err.get("type") == "extra_forbidden":
            message = (
                "unknown field; the tenant comes from the API key"
                if loc and loc[-1] == "tenant"
                else "unknown field"
            )
        details.append({"field": field, "message": message, "type": err.get("type")})
    summary = "; ".join(f"{d['field']}: {d['message']}" for d in details[:5])
    if len(details) > 5:
        summary += f" (and {len(details) - 5} more)"
    return summary or "invalid request", details


def _disk_full(exc: BaseException) -> bool:
    """FastAPI reports any failure to read a body as a 400; a full disk underneath is not the
    client's fault."""
    seen: BaseException | None = exc.__cause__ or exc.__context__
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        summary, details = validation_details(exc.errors())
        return error_response(request, 422, summary, details=details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if _disk_full(exc):  # the multipart parser spooling an upload to a full temp dir
            return await _storage(request, InsufficientStorage("request body spool is full"))
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        headers = dict(exc.headers) if exc.headers else None
        return error_response(request, exc.status_code, message, headers=headers)

    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(
            request,
            exc.status,
            exc.message,
            code=exc.code,
            details=exc.details,
            headers=exc.headers,
        )

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound) -> JSONResponse:
        return error_response(request, 404, str(exc) or "not found")

    @app.exception_handler(PermanentError)
    async def _permanent(request: Request, exc: PermanentError) -> JSONResponse:
        return error_response(request, 422, exc.reason, code=exc.code)

    @app.exception_handler(InsufficientStorage)
    async def _storage(request: Request, exc: InsufficientStorage) -> JSONResponse:
        log.error("storage full", dependency=exc.dependency, detail=exc.detail)
        return error_response(
            request,
            507,
            "the server has no room to store this right now; try again later",
            headers={"Retry-After": "60"},
        )

    @app.exception_handler(DependencyError)
    async def _dependency(request: Request, exc: DependencyError) -> JSONResponse:
        log.error("dependency failed", dependency=exc.dependency, detail=exc.detail)
        return error_response(
            request,
            503,
            f"{dependency_kind(exc.dependency)} is unavailable; try again later",
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(TransientError)
    async def _transient(request: Request, exc: TransientError) -> JSONResponse:
        log.warning("transient failure", error=str(exc))
        return error_response(
            request,
            503,
            "a dependency is temporarily unavailable; try again later",
            headers={"Retry-After": "5"},
        )
