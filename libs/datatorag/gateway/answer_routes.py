"""``POST /v1/answer``: JSON, or server-sent events with ``"stream": true`` (or
``Accept: text/event-stream``).

Events (each ``data`` is one JSON object):

* ``citations``: ``{"sources": [...], "provider", "rewritten_query"}``: what the answer may cite;
* ``delta``: ``{"text"}``: answer text as it is written (``[n]`` of non-retrieved sources are
  already removed);
* ``reset``: ``{"provider", "reason"}``: that provider failed mid-answer; discard the text so far;
* ``done``: the full answer object, exactly what the JSON response would have been (its
  ``answer`` is authoritative: grounding may have dropped a streamed sentence, see
  ``grounding.revised``);
* ``error``: ``{"error": {...}}`` when the answer failed after text was sent.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from datatorag.answering import (
    AnswerEvent,
    AnswerUnavailable,
    CitationsEvent,
    DeltaEvent,
    DoneEvent,
    ResetEvent,
)
from datatorag.gateway import audit
from datatorag.gateway.answer_schemas import AnswerCitationOut, AnswerRequest, AnswerResponse
from datatorag.gateway.answers import PrimedStream, answer, open_stream
from datatorag.gateway.auth import Caller
from datatorag.gateway.errors import request_id_of
from datatorag.gateway.schemas import ErrorBody
from datatorag.gateway.service import QueryService
from datatorag.observability.log import get_logger

log = get_logger(__name__)


def sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def note_documents(event: AnswerEvent) -> None:
    """The audit line's documents: every source an answer's events hand out."""
    if isinstance(event, CitationsEvent):
        audit.note_documents(c.doc_id for c in event.sources)
    elif isinstance(event, DoneEvent):
        audit.note_documents(c.doc_id for c in event.result.citations)


def encode(event: AnswerEvent) -> bytes:
    note_documents(event)
    if isinstance(event, DeltaEvent):
        return sse("delta", {"text": event.text})
    if isinstance(event, CitationsEvent):
        return sse(
            "citations",
            {
                "sources": [AnswerCitationOut.of(c).model_dump(mode="json") for c in event.sources],
                "provider": event.provider,
                "rewritten_query": event.rewritten_query,
            },
        )
    if isinstance(event, ResetEvent):
        return sse("reset", {"provider": event.provider, "reason": event.reason})
    return sse("done", AnswerResponse.of(event.result).model_dump(mode="json"))


async def _body(primed: PrimedStream, request_id: str | None) -> AsyncIterator[bytes]:
    try:
        async for event in primed.events():
            yield encode(event)
    except AnswerUnavailable as exc:
        yield sse(
            "error",
            {
                "error": {
                    "code": "provider_unavailable",
                    "message": exc.message,
                    "request_id": request_id,
                }
            },
        )
    except Exception:  # the response has started: the client gets an error event, not a 500
        log.exception("answer stream failed")
        yield sse(
            "error",
            {
                "error": {
                    "code": "internal_error",
                    "message": "internal error",
                    "request_id": request_id,
                }
            },
        )


def answer_router(service: QueryService) -> APIRouter:
    v1 = APIRouter(prefix="/v1")

    @v1.post(
        "/answer",
        response_model=AnswerResponse,
        tags=["answers"],
        responses={
            200: {
                "content": {
                    "text/event-stream": {
                        # each event's data: a JSON object (citations, delta, reset, done, error)
                        "schema": {"type": "object"}
                    }
                },
                "description": "the answer (JSON), or its events with stream=true",
            },
            401: {"model": ErrorBody, "description": "missing or invalid credentials"},
            408: {"model": ErrorBody, "description": "the request body did not arrive in time"},
            413: {"model": ErrorBody, "description": "request body too large"},
            415: {"model": ErrorBody, "description": "body not application/json"},
            400: {"model": ErrorBody, "description": "the body is not valid UTF-8 JSON"},
            422: {"model": ErrorBody, "description": "invalid request (details per field)"},
            429: {"model": ErrorBody, "description": "rate limited; see Retry-After"},
            503: {"model": ErrorBody, "description": "no answer provider is available"},
        },
        summary="A grounded answer with citations (document, pages, chunks, quote)",
    )
    async def answer_route(
        req: AnswerRequest, request: Request, caller: Caller
    ) -> AnswerResponse | StreamingResponse:
        request_id = request_id_of(request)
        audit.note_query(req.query)
        wants_stream = req.stream or "text/event-stream" in request.headers.get("accept", "")
        if not wants_stream:
            resp = await answer(service, caller, req, request_id)
            audit.note_documents(c.doc_id for c in resp.citations)
            return resp
        primed = await open_stream(service, caller, req, request_id)
        return StreamingResponse(
            _body(primed, request_id),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return v1
