"""``Answer`` over gRPC: proto <-> the REST models, so both transports validate alike and carry
the same answer."""

from __future__ import annotations

from typing import Any

from datatorag.answering import AnswerEvent, CitationsEvent, DeltaEvent, ResetEvent
from datatorag.gateway.answer_schemas import AnswerCitationOut, AnswerRequest, AnswerResponse
from datatorag.gateway.grpc_gen import gateway_pb2 as pb


def answer_request(msg: pb.AnswerRequest) -> AnswerRequest:
    from datatorag.gateway.grpc_server import filters_of  # the one proto -> Filters mapping

    data: dict[str, Any] = {
        "query": msg.query,
        "conversation": [{"role": t.role, "content": t.content} for t in msg.conversation],
    }
    if msg.HasField("k"):
        data["k"] = msg.k
    if msg.HasField("filters"):
        data["filters"] = filters_of(msg.filters)
    return AnswerRequest.model_validate(data)


def _citation(c: AnswerCitationOut) -> pb.AnswerCitation:
    return pb.AnswerCitation(**c.model_dump())


def result(r: AnswerResponse) -> pb.AnswerResult:
    g = r.grounding
    return pb.AnswerResult(
        query=r.query,
        answer=r.answer,
        citations=[_citation(c) for c in r.citations],
        abstained=r.abstained,
        abstain_reason=r.abstain_reason,
        provider=r.provider,
        model=r.model,
        usage=pb.Usage(input_tokens=r.usage.input_tokens, output_tokens=r.usage.output_tokens),
        took_ms=r.took_ms,
        timings=r.timings,
        rewritten_query=r.rewritten_query,
        confidence=r.confidence,
        cached=r.cached,
        grounding=pb.Grounding(**g.model_dump()),
    )


def event(e: AnswerEvent) -> pb.AnswerEvent:
    if isinstance(e, DeltaEvent):
        return pb.AnswerEvent(delta=pb.AnswerDelta(text=e.text))
    if isinstance(e, CitationsEvent):
        return pb.AnswerEvent(
            citations=pb.AnswerSources(
                sources=[_citation(AnswerCitationOut.of(c)) for c in e.sources],
                provider=e.provider,
                rewritten_query=e.rewritten_query,
            )
        )
    if isinstance(e, ResetEvent):
        return pb.AnswerEvent(reset=pb.AnswerReset(provider=e.provider, reason=e.reason))
    return pb.AnswerEvent(done=result(AnswerResponse.of(e.result)))
