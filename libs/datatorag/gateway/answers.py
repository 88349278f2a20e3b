"""``/v1/answer`` independent of transport: validation, error mapping and the event stream that
REST (server-sent events) and gRPC (a server stream) both render.

A stream is *primed* before anything is sent: it runs until the first answer text (or the final
answer), so a request that cannot be answered at all - every provider down - is a plain 503
with the reason, not a stream that opens and then fails. A failure after text was sent ends the
stream with an ``error`` event instead.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass

from datatorag.answering import (
    AnswerEvent,
    AnswerResult,
    AnswerUnavailable,
    CitationsEvent,
    DoneEvent,
)
from datatorag.domain.principal import Principal
from datatorag.gateway.answer_schemas import AnswerRequest, AnswerResponse
from datatorag.gateway.errors import ApiError
from datatorag.gateway.service import QueryService


def check_question(service: QueryService, req: AnswerRequest) -> None:
    limit = service.deps.settings.answer.max_question_chars
    if len(req.query) > limit:
        message = f"query: is {len(req.query)} characters; the limit is {limit}"
        raise ApiError(
            422,
            message,
            code="validation_error",
            details=[{"field": "query", "message": message, "type": "string_too_long"}],
        )


def unavailable(exc: AnswerUnavailable) -> ApiError:
    return ApiError(
        503,
        exc.message,
        code="provider_unavailable",
        headers={"Retry-After": str(max(1, round(exc.retry_after_s)))},
    )


async def answer(
    service: QueryService, principal: Principal, req: AnswerRequest, request_id: str | None
) -> AnswerResponse:
    check_question(service, req)
    try:
        result = await service.answers.answer(principal, req.to_query(request_id))
    except AnswerUnavailable as exc:
        raise unavailable(exc) from exc
    return AnswerResponse.of(result)


@dataclass
class PrimedStream:
    head: list[AnswerEvent]  # events received while priming, sent first
    rest: AsyncGenerator[AnswerEvent, None]

    async def events(self) -> AsyncIterator[AnswerEvent]:
        try:
            for event in self.head:
                yield event
            async for event in self.rest:
                yield event
        finally:
            await self.rest.aclose()


async def open_stream(
    service: QueryService, principal: Principal, req: AnswerRequest, request_id: str | None
) -> PrimedStream:
    check_question(service, req)
    stream = service.answers.stream(principal, req.to_query(request_id))
    head: list[AnswerEvent] = []
    try:
        async for event in stream:
            head.append(event)
            if not isinstance(event, CitationsEvent):
                break
    except AnswerUnavailable as exc:
        await stream.aclose()
        raise unavailable(exc) from exc
    except BaseException:
        await stream.aclose()
        raise
    return PrimedStream(head, stream)


def final(event: AnswerEvent) -> AnswerResult | None:
    return event.result if isinstance(event, DoneEvent) else None
