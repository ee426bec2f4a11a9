"""A rolling window of observations: success rate, mean, EWMA and request counts.

Theory of operation: one `RollingWindow` watches one thing (a model in a pool, a
provider); callers that watch many keep a dict of windows. Each `record` appends a
`Sample(at, value, success)`; at most `size` samples are kept (the oldest falls off)
and a sample expires `duration` seconds after its own timestamp. There is no clock in
here: every call takes `now`, expired samples are pruned lazily on each call, and a
query only ever looks at samples no older than `now - duration`, so the answers are a
pure function of the recorded samples and the `now` passed in.

`score` keeps the seed's meaning: an EWMA of the values (oldest to newest, smoothing
factor `alpha`) multiplied by the success rate; 0.0 when the window is empty.
"""
from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

__all__ = ["Sample", "RollingWindow"]

_INF = math.inf


class Sample(NamedTuple):
    """One observation: when it happened, its value (e.g. latency in seconds), its outcome.
    A named tuple: one is made per request, and a tuple is the cheapest immutable record."""

    at: float
    value: float
    success: bool


def _finite(name: str, value: object) -> float:
    if type(value) is float and -_INF < value < _INF:  # the common case, decided in one test (NaN fails it)
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


class RollingWindow:
    """The last `size` samples of the last `duration` seconds, for one key."""

    __slots__ = ("size", "duration", "alpha", "_samples")

    def __init__(self, size: int = 100, duration: float = 300.0, alpha: float = 0.3) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"window size must be a positive integer, got {size!r}")
        if _finite("window duration", duration) <= 0:
            raise ValueError(f"window duration must be positive seconds, got {duration!r}")
        if not 0.0 < _finite("EWMA alpha", alpha) <= 1.0:
            raise ValueError(f"EWMA alpha must be in (0, 1], got {alpha!r}")
        self.size = size
        self.duration = float(duration)
        self.alpha = float(alpha)
        self._samples: deque[Sample] = deque(maxlen=size)

    def __repr__(self) -> str:
        return f"RollingWindow(size={self.size}, duration={self.duration}, samples={len(self._samples)})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RollingWindow):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]  # mutable

    # -- writing ------------------------------------------------------------------------
    def record(self, now: float, value: float, success: bool = True) -> None:
        """Add one observation made at `now`."""
        at = _finite("now", now)
        self._prune(at)
        self._samples.append(Sample(at, _finite("value", value), success is True or bool(success)))

    def clear(self) -> None:
        self._samples.clear()

    # -- reading ------------------------------------------------------------------------
    def _prune(self, now: float) -> None:
        cutoff = now - self.duration
        samples = self._samples
        while samples and samples[0].at < cutoff:
            samples.popleft()

    def _live(self, now: float) -> list[Sample]:
        self._prune(_finite("now", now))
        cutoff = now - self.duration
        # callers may feed slightly out-of-order timestamps (several workers, one state);
        # the filter keeps the answer exact even when the left-pruning stopped early
        return [s for s in self._samples if s.at >= cutoff]

    def samples(self, now: float) -> Iterator[Sample]:
        """The live samples, oldest first."""
        return iter(self._live(now))

    def count(self, now: float) -> int:
        return len(self._live(now))

    def count_since(self, now: float, seconds: float) -> int:
        """Samples in the last `seconds` (e.g. 60 for requests per minute); bounded by the window."""
        if _finite("seconds", seconds) < 0:
            raise ValueError(f"seconds must not be negative, got {seconds!r}")
        since = now - seconds
        return sum(1 for s in self._live(now) if s.at >= since)

    def success_rate(self, now: float) -> float:
        """Share of successes, 0.0-1.0; 1.0 for an empty window (nothing says it is bad)."""
        live = self._live(now)
        if not live:
            return 1.0
        return sum(1 for s in live if s.success) / len(live)

    def error_rate(self, now: float) -> float:
        """Share of failures, 0.0-1.0 (counted, not 1 - success_rate: 0.3 stays 0.3)."""
        live = self._live(now)
        if not live:
            return 0.0
        return sum(1 for s in live if not s.success) / len(live)

    def average(self, now: float) -> float:
        """Arithmetic mean of the values; 0.0 when empty."""
        live = self._live(now)
        if not live:
            return 0.0
        return math.fsum(s.value for s in live) / len(live)

    def ewma(self, now: float) -> float:
        """Exponentially weighted mean, newest weighted `alpha`; 0.0 when empty."""
        live = self._live(now)
        if not live:
            return 0.0
        value = live[0].value
        for sample in live[1:]:
            value = self.alpha * sample.value + (1.0 - self.alpha) * value
        return value

    def summary(self, now: float, since_seconds: float) -> tuple[int, float, float, float, int]:
        """(count, average, success_rate, score, count in the last `since_seconds`) in one pass."""
        if not self._samples:  # most pool members most of the time: skip the list building
            return 0, 0.0, 1.0, 0.0, 0
        live = self._live(now)
        if not live:
            return 0, 0.0, 1.0, 0.0, 0
        since = now - since_seconds
        alpha, beta = self.alpha, 1.0 - self.alpha
        ok = recent = 0
        total = 0.0
        ewma = live[0].value
        first = True
        for s in live:
            if s.success:
                ok += 1
            if s.at >= since:
                recent += 1
            total += s.value
            if first:
                first = False
            else:
                ewma = alpha * s.value + beta * ewma
        n = len(live)
        rate = ok / n
        return n, total / n, rate, ewma * rate, recent

    def score(self, now: float) -> float:
        """EWMA of the values times the success rate (seed 000); 0.0 when empty."""
        return self.ewma(now) * self.success_rate(now)

    def last(self, now: float) -> Sample | None:
        """The newest live sample, or None."""
        live = self._live(now)
        return live[-1] if live else None

    # -- persistence ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "duration": self.duration,
            "alpha": self.alpha,
            "samples": [[s.at, s.value, s.success] for s in self._samples],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RollingWindow:
        if not isinstance(data, Mapping):
            raise TypeError(f"RollingWindow.from_dict expects a mapping, got {type(data).__name__}")
        window = cls(data.get("size", 100), data.get("duration", 300.0), data.get("alpha", 0.3))
        for item in data.get("samples", ()):
            if not isinstance(item, (list, tuple)) or len(item) != 3:
                raise ValueError(f"a window sample must be [at, value, success], got {item!r}")
            at, value, success = item
            # appended as stored: expiry is judged at the next `now`, not at load time
            window._samples.append(Sample(at=_finite("sample time", at), value=_finite("sample value", value),
                                          success=bool(success)))
        return window
