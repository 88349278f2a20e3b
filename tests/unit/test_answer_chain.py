"""The provider chain: fallback order, time limits (first token, stall, total), mid-answer
failure, circuit breakers; scripted generators stand in for providers (the real adapters are
covered by the generator conformance suite and the gateway tests)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from datatorag.answering import metrics
from datatorag.answering.fallback import (
    AllProvidersFailed,
    Attempt,
    BreakerState,
    CircuitBreaker,
    ProviderChain,
    Reset,
    Timeouts,
)
from datatorag.ports import (
    Finished,
    GenerationEvent,
    GenerationRequest,
    Generator,
    GeneratorError,
    TextDelta,
    Usage,
)

REQUEST = GenerationRequest(question="q", sources=(), messages=())


class Scripted(Generator):
    """Yields ``tokens``; ``fail`` (a GeneratorError kind) after ``fail_after`` tokens;
    ``hang_after`` tokens it waits forever; ``delay`` before the first token."""

    def __init__(
        self,
        name: str,
        tokens: list[str],
        *,
        fail: str | None = None,
        fail_after: int = 0,
        hang_after: int | None = None,
        delay: float = 0.0,
    ) -> None:
        self.name, self.model = name, f"{name}-model"
        self.tokens, self.fail, self.fail_after = tokens, fail, fail_after
        self.hang_after, self.delay = hang_after, delay
        self.calls = 0
        self.closed_streams = 0

    async def stream(self, request: GenerationRequest) -> AsyncIterator[GenerationEvent]:
        self.calls += 1
        try:
            await asyncio.sleep(self.delay)
            for i, token in enumerate(self.tokens):
                if self.fail and i == self.fail_after:
                    raise GeneratorError(self.name, self.fail, "scripted failure")  # type: ignore[arg-type]
                if self.hang_after is not None and i == self.hang_after:
                    await asyncio.sleep(3600)
                yield TextDelta(token)
            if self.fail and self.fail_after >= len(self.tokens):
                raise GeneratorError(self.name, self.fail, "scripted failure")  # type: ignore[arg-type]
            yield Finished(Usage(1, len(self.tokens)), "stop", self.model)
        finally:
            self.closed_streams += 1

    async def check(self) -> None:
        pass


async def _run(chain: ProviderChain) -> list[object]:
    return [e async for e in chain.stream(REQUEST)]


def _text(events: list[object]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


FAST = Timeouts(total_s=2.0, first_token_s=0.3, stall_s=0.2)


async def test_first_provider_answers_when_healthy() -> None:
    a, b = Scripted("openai", ["Hello", " world"]), Scripted("extractive", ["x"])
    events = await _run(ProviderChain([a, b], timeouts=FAST))
    assert events[0] == Attempt("openai", "openai-model")
    assert _text(events) == "Hello world" and b.calls == 0


@pytest.mark.parametrize(
    ("first", "kind"),
    [
        (Scripted("openai", ["a"], fail="unavailable"), "unavailable"),  # 5xx, refused
        (Scripted("openai", ["a"], delay=1.0), "timeout"),  # no first token in time
        (Scripted("openai", ["a", "b"], hang_after=1), "stalled"),  # silent mid-answer
        (Scripted("openai", ["a"], fail="malformed"), "malformed"),
    ],
)
async def test_falls_back_on_failure_timeout_and_stall(first: Scripted, kind: str) -> None:
    before = metrics.FALLBACKS.labels("openai", "extractive")._value.get()
    errors = metrics.PROVIDER_ERRORS.labels("openai", kind)._value.get()
    fallback = Scripted("extractive", ["fallback answer"])
    events = await _run(ProviderChain([first, fallback], timeouts=FAST))
    attempts = [e for e in events if isinstance(e, Attempt)]
    assert [a.provider for a in attempts] == ["openai", "extractive"]
    assert _text(events).endswith("fallback answer")
    assert metrics.FALLBACKS.labels("openai", "extractive")._value.get() == before + 1
    assert metrics.PROVIDER_ERRORS.labels("openai", kind)._value.get() == errors + 1
    assert first.closed_streams == 1  # the failed provider's stream was closed


async def test_failure_after_text_resets_before_the_next_provider() -> None:
    first = Scripted("openai", ["partial ", "answer ", "more"], fail="unavailable", fail_after=2)
    events = await _run(ProviderChain([first, Scripted("extractive", ["full"])], timeouts=FAST))
    kinds = [type(e).__name__ for e in events]
    assert kinds == [
        "Attempt",
        "TextDelta",
        "TextDelta",
        "Reset",
        "Attempt",
        "TextDelta",
        "Finished",
    ]
    reset = next(e for e in events if isinstance(e, Reset))
    assert reset.provider == "openai" and "unavailable" in reset.reason


async def test_total_timeout_bounds_a_slow_trickle() -> None:
    slow = Scripted("openai", ["a"] * 50)
    slow.delay = 0.0

    async def trickle(request: GenerationRequest) -> AsyncIterator[GenerationEvent]:
        for _ in range(50):
            await asyncio.sleep(0.05)  # never a stall, but never done either
            yield TextDelta("a")
        yield Finished(Usage(), "stop", "m")

    slow.stream = trickle  # type: ignore[method-assign]
    chain = ProviderChain([slow], timeouts=Timeouts(total_s=0.5, first_token_s=0.3, stall_s=0.2))
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(AllProvidersFailed) as info:
        await _run(chain)
    assert loop.time() - started < 1.5
    assert "timeout" in info.value.reasons["openai"]


async def test_all_failing_names_every_reason() -> None:
    chain = ProviderChain(
        [
            Scripted("openai", ["a"], fail="unavailable"),
            Scripted("bedrock", ["a"], fail="misconfigured"),
        ],
        timeouts=FAST,
    )
    with pytest.raises(AllProvidersFailed) as info:
        await _run(chain)
    assert set(info.value.reasons) == {"openai", "bedrock"}
    assert "misconfigured" in str(info.value) and "unavailable" in str(info.value)


async def test_open_breaker_skips_the_provider_until_reset() -> None:
    now = [0.0]
    broken = Scripted("openai", ["a"], fail="unavailable")
    healthy = Scripted("extractive", ["ok"])
    chain = ProviderChain(
        [broken, healthy], timeouts=FAST, failures=2, reset_s=30, clock=lambda: now[0]
    )
    for _ in range(2):
        await _run(chain)
    assert chain.breakers["openai"].state is BreakerState.OPEN
    events = await _run(chain)
    assert broken.calls == 2  # skipped while open
    assert [e.provider for e in events if isinstance(e, Attempt)] == ["extractive"]
    assert chain.first_available() is healthy
    now[0] = 31.0  # half-open: one probe goes through; it succeeds and closes the breaker
    broken.fail = None
    events = await _run(chain)
    assert broken.calls == 3 and _text(events) == "a"
    assert chain.breakers["openai"].state is BreakerState.CLOSED


def test_half_open_breaker_lets_one_probe_through_and_reopens_on_failure() -> None:
    now = [0.0]
    breaker = CircuitBreaker("p", failures=1, reset_s=10, clock=lambda: now[0])
    breaker.failure()
    assert breaker.state is BreakerState.OPEN and not breaker.allow()
    assert breaker.retry_in_s() == 10
    now[0] = 10.0
    assert breaker.allow() and not breaker.allow()  # one probe at a time
    breaker.failure()
    assert breaker.state is BreakerState.OPEN and breaker.retry_in_s() == 10
    with pytest.raises(ValueError):
        CircuitBreaker("p", failures=0)


async def test_a_provider_raising_outside_its_contract_fails_over() -> None:
    class Buggy(Scripted):
        async def stream(self, request: GenerationRequest) -> AsyncIterator[GenerationEvent]:
            raise KeyError("choices")
            yield  # pragma: no cover

    events = await _run(ProviderChain([Buggy("openai", []), Scripted("extractive", ["ok"])]))
    assert _text(events) == "ok"
