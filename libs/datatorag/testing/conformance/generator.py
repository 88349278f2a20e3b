"""Conformance suite of the ``Generator`` port (``datatorag.ports.generator``): the event
sequence, streamed and one-piece answers alike, independence of concurrent calls, early close,
errors as ``GeneratorError``.

Provide two fixtures: ``generator`` (the adapter under test, answering a sensible model's way)
and ``unreachable_generator`` (the same adapter pointed at a provider that cannot be reached).
The requests carry a real prompt (``datatorag.answering.prompt``) with two fenced sources.
"""

from __future__ import annotations

import asyncio

import pytest

from datatorag.answering.prompt import answer_messages
from datatorag.ports import (
    Finished,
    GenerationRequest,
    Generator,
    GeneratorError,
    SourcePassage,
    TextDelta,
)

__all__ = [
    "test_check_passes_and_provider_is_described",
    "test_closing_a_stream_early_raises_nothing",
    "test_concurrent_requests_are_independent",
    "test_generate_returns_the_streamed_text",
    "test_stream_is_deltas_then_one_finished",
    "test_unreachable_provider_raises_generator_error",
]

SOURCES = (
    SourcePassage(
        1,
        "Up to 5 days of unused PTO carry over into the next calendar year. Carried-over days "
        "must be used by March 31.",
        "Paid Time Off and Leave Policy",
        "Carryover and Payout",
    ),
    SourcePassage(
        2,
        "Northwind matches 100% of the first 4% of eligible pay you contribute, plus 50% of the "
        "next 2%. The match is deposited every pay period.",
        "401(k) Retirement Plan Summary",
        "Company Match",
    ),
)


def request(question: str) -> GenerationRequest:
    return GenerationRequest(
        question=question,
        sources=SOURCES,
        messages=answer_messages(question, SOURCES),
        max_tokens=128,
        request_id="conformance-1",
        tenant="conformance",
    )


PTO = request("How many days of unused PTO carry over into the next year?")
MATCH = request("How much does the company match on my 401(k) contributions?")


async def test_stream_is_deltas_then_one_finished(generator: Generator) -> None:
    events = [e async for e in generator.stream(PTO)]
    assert events and isinstance(events[-1], Finished)
    assert all(isinstance(e, TextDelta) for e in events[:-1])
    text = "".join(e.text for e in events[:-1] if isinstance(e, TextDelta))
    assert "5 days" in text and "[1]" in text
    finished = events[-1]
    assert finished.model and finished.finish_reason
    assert finished.usage.output_tokens > 0


async def test_generate_returns_the_streamed_text(generator: Generator) -> None:
    streamed = "".join([e.text async for e in generator.stream(MATCH) if isinstance(e, TextDelta)])
    whole = await generator.generate(MATCH)
    assert whole.text == streamed
    assert "[2]" in whole.text  # the match policy is source 2
    assert whole.usage.output_tokens > 0 and whole.model


async def test_concurrent_requests_are_independent(generator: Generator) -> None:
    alone = [(await generator.generate(r)).text for r in (PTO, MATCH)]

    async def streamed(r: GenerationRequest) -> str:
        return "".join([e.text async for e in generator.stream(r) if isinstance(e, TextDelta)])

    together = await asyncio.gather(*(streamed(r) for r in (PTO, MATCH, PTO, MATCH)))
    assert together == alone * 2


async def test_closing_a_stream_early_raises_nothing(generator: Generator) -> None:
    stream = generator.stream(PTO)
    first = await stream.__anext__()
    assert isinstance(first, TextDelta | Finished)
    await stream.aclose()  # type: ignore[attr-defined]
    # the adapter is still usable afterwards (the connection went back, nothing leaked)
    assert "5 days" in (await generator.generate(PTO)).text


async def test_check_passes_and_provider_is_described(generator: Generator) -> None:
    await generator.check()
    assert generator.name in ("extractive", "openai", "bedrock") and generator.model


async def test_unreachable_provider_raises_generator_error(
    unreachable_generator: Generator,
) -> None:
    with pytest.raises(GeneratorError) as info:
        [e async for e in unreachable_generator.stream(PTO)]
    assert info.value.provider == unreachable_generator.name
    assert info.value.kind in ("unavailable", "timeout", "misconfigured")
    with pytest.raises(GeneratorError):
        await unreachable_generator.generate(PTO)
