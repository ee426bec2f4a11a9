"""MetricsMixin: latency, error rate and throughput per operation, and a snapshot of them.

Theory of operation: lifetime counters (requests, errors, latency sum/min/max) per
operation, plus a core `RollingWindow` per operation holding the recent latencies and
outcomes, from which the snapshot reads the recent error rate, mean latency and throughput
(requests per second over the last minute). `_measure(operation)` times a block on the
mixins' clock and records it, an exception counting as an error; `metrics_snapshot()`
returns frozen values, so a reader holds no lock and sees no later change.
"""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..._core._window import RollingWindow
from ._base import Clocked, seconds

__all__ = ["MetricsMixin", "OperationMetrics"]


@dataclass(frozen=True, slots=True, kw_only=True)
class OperationMetrics:
    requests: int
    errors: int
    latency_total: float
    latency_min: float | None
    latency_max: float | None
    recent_latency_avg: float        # over the rolling window
    recent_error_rate: float         # over the rolling window
    throughput: float                # requests per second over the last `throughput_period`

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def latency_avg(self) -> float:
        return self.latency_total / self.requests if self.requests else 0.0


class _Counters:
    __slots__ = ("requests", "errors", "total", "low", "high", "window")

    def __init__(self, window: RollingWindow) -> None:
        self.requests = self.errors = 0
        self.total = 0.0
        self.low: float | None = None
        self.high: float | None = None
        self.window = window


class MetricsMixin(Clocked):
    _metrics: dict[str, _Counters]
    _metrics_lock: threading.Lock
    _metrics_window: float = 300.0
    _metrics_period: float = 60.0

    def __init__(self, *, metrics_window: float | str = 300.0, throughput_period: float | str = 60.0,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._metrics_window = seconds("metrics_window", metrics_window, positive=True)
        self._metrics_period = seconds("throughput_period", throughput_period, positive=True)
        if self._metrics_period > self._metrics_window:
            raise ValueError(f"throughput_period ({self._metrics_period:g}s) must not exceed "
                             f"metrics_window ({self._metrics_window:g}s)")
        self._metrics = {}
        self._metrics_lock = threading.Lock()

    def _metrics_record(self, operation: str, latency: float, success: bool = True) -> None:
        """One finished `operation` that took `latency` seconds."""
        if not isinstance(operation, str) or not operation:
            raise ValueError(f"operation must be a non-empty str, got {operation!r}")
        now = self._now()
        with self._metrics_lock:
            c = self._metrics.get(operation)
            if c is None:
                c = self._metrics[operation] = _Counters(RollingWindow(10_000, self._metrics_window))
            c.window.record(now, latency, success)  # checks latency is a finite number first
            c.requests += 1
            c.errors += 0 if success else 1
            c.total += latency
            c.low = latency if c.low is None else min(c.low, latency)
            c.high = latency if c.high is None else max(c.high, latency)

    @contextlib.contextmanager
    def _measure(self, operation: str) -> Iterator[None]:
        """Time the block; an exception in it is recorded as an error (and raised)."""
        started = self._now()
        try:
            yield
        except BaseException:
            self._metrics_record(operation, self._now() - started, success=False)
            raise
        self._metrics_record(operation, self._now() - started, success=True)

    def metrics_snapshot(self) -> dict[str, OperationMetrics]:
        """Frozen metrics per operation."""
        now = self._now()
        with self._metrics_lock:
            out = {}
            for name, c in self._metrics.items():
                count, avg, rate, _score, recent = c.window.summary(now, self._metrics_period)
                out[name] = OperationMetrics(
                    requests=c.requests, errors=c.errors, latency_total=c.total, latency_min=c.low,
                    latency_max=c.high, recent_latency_avg=avg, recent_error_rate=(1.0 - rate) if count else 0.0,
                    throughput=recent / self._metrics_period)
            return out

    def _metrics_reset(self) -> None:
        with self._metrics_lock:
            self._metrics.clear()
