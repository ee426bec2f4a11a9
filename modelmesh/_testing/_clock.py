"""A clock for tests: time that moves only when the test says so.

Theory of operation: the shells take a `clock` callable (seconds, like `time.time`) and a
`sleep` callable. Hand them a `FakeClock` and its `sleep`: a sleep returns at once,
moves the fake time forward and is written down in `sleeps`, so a test can assert on
back-off without waiting for it. A lock makes it safe to share across threads.
"""
from __future__ import annotations

import math
import threading

__all__ = ["FakeClock"]


def _seconds(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number of seconds, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{what} must be finite, got {value!r}")
    return float(value)


class FakeClock:
    """`clock()` / `clock.now()` read the fake time; `advance` and `sleep` move it."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = _seconds(start, "start")
        self._sleeps: list[float] = []
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def __call__(self) -> float:
        return self.now()

    def advance(self, seconds: float) -> float:
        """Move time forward by `seconds` (>= 0); returns the new time."""
        step = _seconds(seconds, "advance")
        if step < 0:
            raise ValueError(f"time cannot go backwards: advance({seconds!r})")
        with self._lock:
            self._now += step
            return self._now

    def sleep(self, seconds: float) -> None:
        """Like `time.sleep`, but instant: advances the clock and records the sleep."""
        step = _seconds(seconds, "sleep length")
        if step < 0:
            raise ValueError(f"sleep length must be non-negative, got {seconds!r}")
        with self._lock:
            self._now += step
            self._sleeps.append(step)

    @property
    def sleeps(self) -> list[float]:
        """Every sleep so far, in order (a copy)."""
        with self._lock:
            return list(self._sleeps)

    def __repr__(self) -> str:
        return f"FakeClock(now={self.now()!r})"
