"""TimeoutMixin: timeouts as durations, and deadlines that shrink what is left to wait.

Theory of operation: sync code cannot cancel a call from outside, so a timeout here is a
*deadline* the code checks and divides: `_deadline()` starts one (`default`, or the
streaming ones), `deadline.remaining()` is what a socket read may still wait (pass it as
the HTTP timeout), `deadline.check()` raises `RequestTimeoutError` once it has passed.
`_with_stream_timeout(chunks)` applies `streaming` (first chunk) and `streaming_total` to a
stream, checked as each chunk arrives: a read that blocks is cut by its socket timeout,
which `remaining()` keeps within the deadline. Durations are parsed by the core ("30s").
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from ..._core._errors import APITimeoutError
from ._base import Clocked, seconds

__all__ = ["TimeoutMixin", "Deadline", "RequestTimeoutError"]

T = TypeVar("T")


class RequestTimeoutError(APITimeoutError):
    """An operation ran past its deadline."""


@dataclass(frozen=True, slots=True)
class Deadline:
    """A point in time on `clock`, for one operation."""

    at: float
    seconds: float
    clock: Callable[[], float]
    operation: str = "request"

    def remaining(self) -> float:
        """Seconds left, never below zero."""
        return max(0.0, self.at - self.clock())

    @property
    def expired(self) -> bool:
        return self.clock() >= self.at

    def check(self) -> None:
        """Raise RequestTimeoutError once the deadline has passed."""
        if self.expired:
            raise RequestTimeoutError(f"{self.operation} ran past its {self.seconds:g}s timeout")


class TimeoutMixin(Clocked):
    """`configure_timeout`, `_deadline`, `_with_stream_timeout`."""

    _timeout_default: float = 30.0
    _timeout_streaming: float = 60.0
    _timeout_streaming_total: float = 300.0
    _timeout_connect: float = 10.0

    def __init__(self, *, timeout_default: float | str = 30.0, timeout_streaming: float | str = 60.0,
                 timeout_streaming_total: float | str = 300.0, timeout_connect: float | str = 10.0,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.configure_timeout(default=timeout_default, streaming=timeout_streaming,
                               streaming_total=timeout_streaming_total, connect=timeout_connect)

    def configure_timeout(self, default: float | str | None = None, streaming: float | str | None = None,
                          streaming_total: float | str | None = None, connect: float | str | None = None) -> None:
        """Set timeouts (seconds or durations like "30s"); None keeps one."""
        values = {name: seconds(f"{name} timeout", value, positive=True)
                  for name, value in (("default", default), ("streaming", streaming),
                                      ("streaming_total", streaming_total), ("connect", connect))
                  if value is not None}
        for name, value in values.items():
            setattr(self, f"_timeout_{name}", value)

    def timeout_settings(self) -> dict[str, float]:
        return {"default": self._timeout_default, "streaming": self._timeout_streaming,
                "streaming_total": self._timeout_streaming_total, "connect": self._timeout_connect}

    def _deadline(self, timeout: float | str | None = None, operation: str = "request") -> Deadline:
        """A deadline `timeout` (default: the `default` timeout) from now."""
        span = self._timeout_default if timeout is None else seconds("timeout", timeout, positive=True)
        return Deadline(at=self._now() + span, seconds=span, clock=self._now, operation=operation)

    def _http_timeouts(self, deadline: Deadline) -> tuple[float, float]:
        """(connect, read) timeouts for a request that must end by `deadline`."""
        deadline.check()
        left = deadline.remaining()
        return min(self._timeout_connect, left), left

    def _with_stream_timeout(self, chunks: Iterable[T], first_chunk_timeout: float | str | None = None,
                             total_timeout: float | str | None = None, operation: str = "stream") -> Iterator[T]:
        """`chunks`, raising RequestTimeoutError when the first comes late or the whole runs long."""
        first = self._deadline(self._timeout_streaming if first_chunk_timeout is None else first_chunk_timeout,
                               f"{operation} (first chunk)")
        total = self._deadline(self._timeout_streaming_total if total_timeout is None else total_timeout,
                               f"{operation} (total)")
        waiting_first = True
        for chunk in chunks:
            if waiting_first:
                first.check()
                waiting_first = False
            total.check()
            yield chunk
