"""The one base every timed mixin shares: an injected clock and sleep.

Theory of operation: the mixins cooperate through `super().__init__(**kwargs)`; each takes
its own keyword arguments and passes the rest along the MRO. Several of them need the time
(cache expiry, retry backoff, token buckets, windows, deadlines), and they must all read the
*same* clock, so the clock is not theirs: `Clocked` sits once in every MRO (C3 puts a shared
base after all its subclasses) and takes `clock=` and `sleep=` for all of them.

`clock` is a monotonic seconds source (`time.monotonic` unless injected). `sleep` defaults
to the injected clock's own `sleep` when it has one (`modelmesh.testing.FakeClock` does), so
a test that fakes the clock never really sleeps by accident; else to `time.sleep`.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..._core._durations import parse_duration

__all__ = ["Clocked", "seconds"]


class Clocked:
    """Holds the clock and sleep every timed mixin reads."""

    _clock: Callable[[], float]
    _sleep: Callable[[float], None]

    def __init__(self, *, clock: Callable[[], float] | None = None,
                 sleep: Callable[[float], None] | None = None, **kwargs: Any) -> None:
        if clock is not None and not callable(clock):
            raise TypeError(f"clock must be a callable returning seconds, got {type(clock).__name__}")
        if sleep is not None and not callable(sleep):
            raise TypeError(f"sleep must be a callable taking seconds, got {type(sleep).__name__}")
        if kwargs:
            mro = type(self).__mro__
            after = mro[mro.index(Clocked) + 1:]
            if not any("__init__" in vars(c) for c in after if c is not object):  # nobody left takes settings
                raise TypeError(f"{type(self).__name__}() got unexpected keyword argument(s) "
                                f"{', '.join(map(repr, sorted(kwargs)))}")
        super().__init__(**kwargs)
        self._clock = clock if clock is not None else time.monotonic
        self._sleep = sleep if sleep is not None else getattr(clock, "sleep", time.sleep)

    def _now(self) -> float:
        # a class that skipped our __init__ (the seed's mixins are set up by _init_* calls) still has time
        clock = getattr(self, "_clock", None) or time.monotonic
        return float(clock())

    def _pause(self, seconds: float) -> None:
        if seconds > 0:
            (getattr(self, "_sleep", None) or time.sleep)(seconds)


def seconds(name: str, value: object, *, positive: bool = False) -> float:
    """A duration setting (`30`, `"500ms"`, `"5m"`) as seconds, the error naming the setting."""
    try:
        result = parse_duration(value)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None
    if positive and result <= 0:
        raise ValueError(f"{name}: expected a duration above zero, got {value!r}")
    return result
