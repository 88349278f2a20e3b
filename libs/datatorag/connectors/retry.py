"""Backoff policies shared by the network sources (tenacity underneath)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryError,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

T = TypeVar("T")

# A server that is down, a dropped connection, a read that timed out.
NETWORK_ERRORS: tuple[type[BaseException], ...] = (OSError, asyncio.TimeoutError, EOFError)


@dataclass(frozen=True)
class Backoff:
    attempts: int = 4
    initial_s: float = 0.5
    max_s: float = 10.0
    jitter_s: float = 0.5

    def retrying(self, retry_on: Callable[[BaseException], bool]) -> AsyncRetrying:
        return AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential_jitter(
                multiplier=self.initial_s, max=self.max_s, jitter=self.jitter_s
            ),
            retry=retry_if_exception(retry_on),
            reraise=True,
        )

    async def call(
        self, fn: Callable[[], Awaitable[T]], retry_on: Callable[[BaseException], bool]
    ) -> T:
        try:
            async for attempt in self.retrying(retry_on):
                with attempt:
                    return await fn()
        except RetryError as exc:  # pragma: no cover - reraise=True re-raises the last error
            raise exc.last_attempt.exception() from None  # type: ignore[misc]
        raise AssertionError("unreachable")

    def delay(self, attempt: int) -> float:
        """Delay before retry number ``attempt`` (1-based), without jitter."""
        return min(self.max_s, self.initial_s * 2.0 ** (attempt - 1))


def is_network_error(exc: BaseException) -> bool:
    return isinstance(exc, NETWORK_ERRORS)
