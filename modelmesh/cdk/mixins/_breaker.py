"""CircuitBreakerMixin: fail fast while a provider is unhealthy, over the core's breaker.

Theory of operation: the state machine is the core's `CircuitBreaker` (one transition
table, CLOSED -> OPEN -> HALF_OPEN -> CLOSED); this mixin only feeds it the mixins' clock
and holds a lock around it. `check_circuit()` asks it whether a request may go and takes a
half-open trial slot when it does, or raises `CircuitOpenError` (its `retry_after` says
when the breaker will let a trial through); `record_success` / `record_failure` report
the outcome; `_call_with_circuit(fn)` does all three around one call.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from ..._core._breaker import BreakerState, CircuitBreaker
from ..._core._errors import ModelMeshError
from ._base import Clocked, seconds

__all__ = ["CircuitBreakerMixin", "CircuitOpenError"]

T = TypeVar("T")


class CircuitOpenError(ModelMeshError):
    """The circuit is open: the call was refused without reaching the provider."""


class CircuitBreakerMixin(Clocked):
    """`check_circuit`, `record_success`, `record_failure`, `reset_circuit`, `circuit_breaker_stats`."""

    _breaker: CircuitBreaker
    _breaker_lock: threading.Lock

    def __init__(self, *, failure_threshold: int = 5, reset_timeout: float | str = 60.0, half_open_max: int = 1,
                 success_threshold: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._breaker = CircuitBreaker()
        self._breaker_lock = threading.Lock()
        self.configure_circuit_breaker(failure_threshold=failure_threshold, reset_timeout=reset_timeout,
                                       half_open_max=half_open_max, success_threshold=success_threshold)

    def configure_circuit_breaker(self, failure_threshold: int | None = None, reset_timeout: float | str | None = None,
                                  half_open_max: int | None = None, success_threshold: int | None = None) -> None:
        """Change the parameters (None keeps one); the breaker's state is kept."""
        timeout = None if reset_timeout is None else seconds("reset_timeout", reset_timeout)
        with self._breaker_lock:
            self._breaker.configure(failure_threshold=failure_threshold, reset_timeout=timeout,
                                    half_open_max=half_open_max, success_threshold=success_threshold)

    @property
    def circuit_state(self) -> BreakerState:
        return self._breaker.state

    def check_circuit(self) -> None:
        """Let a request through (taking a half-open trial slot), or raise CircuitOpenError."""
        with self._breaker_lock:
            now = self._now()
            breaker = self._breaker
            if breaker.allow(now):
                breaker.on_request(now)
                return
            until = breaker.open_until
            wait = None if until is None or until == float("inf") else max(0.0, until - now)
            state = breaker.state.value.replace("_", "-")
            why = f" ({breaker.reason})" if breaker.reason else ""
        raise CircuitOpenError(f"{type(self).__name__}: circuit {state}{why}, request refused", retry_after=wait)

    def record_success(self) -> None:
        with self._breaker_lock:
            self._breaker.record_success(self._now())

    def record_failure(self) -> None:
        with self._breaker_lock:
            self._breaker.record_failure(self._now())

    def release_circuit(self) -> None:
        """The request ended with no verdict on the provider (cancelled, the caller's own error)."""
        with self._breaker_lock:
            self._breaker.release(self._now())

    def reset_circuit(self) -> None:
        with self._breaker_lock:
            self._breaker.reset(self._now())

    def circuit_breaker_stats(self) -> dict[str, Any]:
        with self._breaker_lock:
            self._breaker.allow(self._now())  # an expired deadline reads as half-open, as check_circuit would see it
            return self._breaker.stats()

    def _call_with_circuit(self, fn: Callable[..., T], *args: Any,
                           counts: Callable[[BaseException], bool] | None = None, **kwargs: Any) -> T:
        """`fn(*args, **kwargs)` behind the breaker. An exception counts as a failure when
        `counts(exc)` says so (default: any Exception); otherwise it releases the slot."""
        self.check_circuit()
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            if counts is None or counts(exc):
                self.record_failure()
            else:
                self.release_circuit()
            raise
        except BaseException:
            self.release_circuit()
            raise
        self.record_success()
        return result
