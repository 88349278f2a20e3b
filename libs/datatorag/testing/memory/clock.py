"""The clock the in-memory fakes read for visibility timeouts, delays and leases."""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]
"""Seconds on a monotonic scale, like ``time.monotonic``."""


class ManualClock:
    """A clock that moves only when told: ``advance(30)`` lets a visibility timeout lapse at once.

    Starts at the current ``time.monotonic()`` so it can stand in for it."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.monotonic() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"time only moves forward, got {seconds}")
        self.now += seconds
