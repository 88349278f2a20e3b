"""Providers in fallback order, each behind a circuit breaker and bounded in time.

A provider call fails over to the next provider when it raises, sends no first token within
``first_token_timeout_s``, stalls for ``stall_timeout_s`` between tokens, or runs past
``timeout_s`` in all. A failure after some text was streamed also fails over: the consumer gets
a ``Reset`` (discard what you showed) and the next provider's answer, so a streamed and a
non-streamed request still end with the same answer. A breaker that saw ``failures``
consecutive failures skips its provider for ``reset_s``; then one call is let through as a
probe, and its outcome closes or re-opens it. When every provider fails or is open, the error
names each one's reason.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from datatorag.answering import metrics
from datatorag.observability.log import get_logger
from datatorag.ports import (
    Finished,
    GenerationEvent,
    GenerationRequest,
    Generator,
    GeneratorError,
    TextDelta,
)

log = get_logger(__name__)


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        *,
        failures: int = 3,
        reset_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failures < 1 or reset_s <= 0:
            raise ValueError("failures must be >= 1 and reset_s > 0")
        self.name = name
        self.threshold = failures
        self.reset_s = reset_s
        self.clock = clock
        self.consecutive = 0
        self.opened_at: float | None = None
        self._probing = False
        metrics.BREAKER_STATE.labels(name).set(0)

    @property
    def state(self) -> BreakerState:
        if self.opened_at is None:
            return BreakerState.CLOSED
        if self.clock() - self.opened_at >= self.reset_s:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def allow(self) -> bool:
        """May a call go through now? In half-open state, only one probe at a time."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def success(self) -> None:
        self.consecutive = 0
        self.opened_at = None
        self._probing = False
        metrics.BREAKER_STATE.labels(self.name).set(0)

    def failure(self) -> None:
        self.consecutive += 1
        was_probe, self._probing = self._probing, False
        if was_probe or self.consecutive >= self.threshold:
            if self.opened_at is None or was_probe:
                log.warning("circuit opened", provider=self.name, failures=self.consecutive)
            self.opened_at = self.clock()
            metrics.BREAKER_STATE.labels(self.name).set(1)

    def retry_in_s(self) -> float:
        if self.opened_at is None:
            return 0.0
        return max(0.0, self.reset_s - (self.clock() - self.opened_at))


@dataclass(frozen=True)
class Timeouts:
    total_s: float = 60.0
    first_token_s: float = 20.0
    stall_s: float = 10.0


@dataclass(frozen=True)
class Attempt:
    """Which provider produced the events that follow."""

    provider: str
    model: str


@dataclass(frozen=True)
class Reset:
    """A provider failed mid-answer: discard its text; the next provider starts over."""

    provider: str
    reason: str


ChainEvent = Attempt | Reset | TextDelta | Finished


class AllProvidersFailed(Exception):
    def __init__(self, reasons: dict[str, str], retry_after_s: float) -> None:
        self.reasons = reasons
        self.retry_after_s = retry_after_s
        detail = "; ".join(f"{k}: {v}" for k, v in reasons.items()) or "no provider configured"
        super().__init__(f"no answer provider is available ({detail})")


class ProviderChain:
    def __init__(
        self,
        providers: Sequence[Generator],
        *,
        timeouts: Timeouts | None = None,
        failures: int = 3,
        reset_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not providers:
            raise ValueError("a provider chain needs at least one provider")
        self.providers = list(providers)
        self.timeouts = timeouts or Timeouts()
        self.breakers = {
            p.name: CircuitBreaker(p.name, failures=failures, reset_s=reset_s, clock=clock)
            for p in self.providers
        }

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.providers]

    @property
    def uses_llm(self) -> bool:
        return any(p.name != "extractive" for p in self.providers)

    def first_available(self) -> Generator | None:
        for p in self.providers:
            if self.breakers[p.name].state is not BreakerState.OPEN:
                return p
        return None

    async def stream(
        self, request: GenerationRequest, *, only: Sequence[str] | None = None
    ) -> AsyncIterator[ChainEvent]:
        reasons: dict[str, str] = {}
        for index, provider in enumerate(self.providers):
            if only is not None and provider.name not in only:
                continue
            breaker = self.breakers[provider.name]
            if not breaker.allow():
                reasons[provider.name] = (
                    f"circuit open after repeated failures (retry in {breaker.retry_in_s():.0f}s)"
                )
                metrics.PROVIDER_ERRORS.labels(provider.name, "circuit_open").inc()
                continue
            if index > 0 and reasons:
                metrics.FALLBACKS.labels(self.providers[index - 1].name, provider.name).inc()
            yield Attempt(provider.name, provider.model)
            streamed = False
            try:
                async for event in self._bounded(provider, request):
                    if isinstance(event, TextDelta) and event.text:
                        streamed = True
                    yield event
            except GeneratorError as exc:
                breaker.failure()
                metrics.PROVIDER_ERRORS.labels(provider.name, exc.kind).inc()
                log.warning(
                    "provider failed",
                    provider=provider.name,
                    kind=exc.kind,
                    reason=exc.reason,
                    status=exc.status,
                    request_id=request.request_id,
                    after_text=streamed,
                )
                reasons[provider.name] = f"{exc.kind}: {exc.reason}"
                if streamed:
                    yield Reset(provider.name, f"{exc.kind}: {exc.reason}")
                continue
            breaker.success()
            return
        retry = min(
            (b.retry_in_s() for b in self.breakers.values() if b.retry_in_s() > 0), default=5.0
        )
        raise AllProvidersFailed(reasons, retry)

    async def _bounded(
        self, provider: Generator, request: GenerationRequest
    ) -> AsyncIterator[GenerationEvent]:
        """The provider's events, each awaited under the first-token, stall and total limits."""
        t = self.timeouts
        deadline = time.monotonic() + t.total_s
        stream = provider.stream(request)
        it = stream.__aiter__()
        first = True
        finished = False
        try:
            while True:
                left = deadline - time.monotonic()
                wait = min(t.first_token_s if first else t.stall_s, left)
                if wait <= 0:
                    raise GeneratorError(provider.name, "timeout", f"no answer in {t.total_s:g}s")
                try:
                    event = await asyncio.wait_for(it.__anext__(), wait)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    if wait >= left:
                        reason = f"no complete answer in {t.total_s:g}s"
                        raise GeneratorError(provider.name, "timeout", reason) from None
                    if first:
                        reason = f"no first token in {t.first_token_s:g}s"
                        raise GeneratorError(provider.name, "timeout", reason) from None
                    reason = f"no token for {t.stall_s:g}s"
                    raise GeneratorError(provider.name, "stalled", reason) from None
                except GeneratorError:
                    raise
                except Exception as exc:  # an adapter bug must fail over, not take the request
                    log.exception("provider raised outside its contract", provider=provider.name)
                    raise GeneratorError(provider.name, "malformed", repr(exc)) from exc
                if isinstance(event, TextDelta) and event.text:
                    first = False
                finished = finished or isinstance(event, Finished)
                yield event
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except Exception:  # noqa: BLE001 - closing a broken stream must not mask why
                    log.debug("closing a provider stream failed", provider=provider.name)
        if not finished:
            raise GeneratorError(provider.name, "malformed", "the stream ended without finishing")

    async def close(self) -> None:
        for p in self.providers:
            await p.close()
