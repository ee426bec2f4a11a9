"""RetryMixin: exponential backoff with jitter, on an injected clock, sleep and random.

Theory of operation: `_retry(fn, ...)` calls `fn`; when it raises and `retry_on(exc)` says
the failure is transient, it waits and calls again, up to `max_retries` more times and
(when `retry_timeout` is set) never past that many seconds after the first call. The wait
before retry n (0-based) is `min(backoff_max, backoff_base * 2**n)` plus a jitter drawn from
`[0, jitter)` with the injected `random.Random`; when the error carries a `retry_after`
(every ModelMeshError can, from the provider's Retry-After), the wait is at least that.
After the last attempt the last exception is raised as it was.

Why our own loop and not tenacity: tenacity is an optional extra (the webhook sink's), and
every connector author gets the CDK with the core dependencies only; the loop is a dozen
lines, and one implementation serves RetryMixin and HttpClientMixin alike.
"""
from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any, TypeVar

from ._base import Clocked, seconds

__all__ = ["RetryMixin", "is_transient"]

T = TypeVar("T")


def is_transient(exc: BaseException) -> bool:
    """The default `retry_on`: connection trouble, timeouts, and errors that say they are
    retryable (`retryable` attribute) or carry a 429/5xx `status`."""
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    retryable = getattr(exc, "retryable", None)
    if isinstance(retryable, bool):
        return retryable
    status = getattr(exc, "status", None)
    return isinstance(status, int) and (status == 429 or status >= 500)


class RetryMixin(Clocked):
    """`_retry(fn, *args, **kwargs)`: calls `fn` until it succeeds or the policy gives up."""

    _retry_max: int = 3
    _retry_base: float = 0.5
    _retry_cap: float = 30.0
    _retry_jitter: float = 0.5
    _retry_timeout: float | None = None
    _retry_on: Callable[[BaseException], bool] = staticmethod(is_transient)
    _retry_rng: random.Random

    def __init__(self, *, max_retries: int = 3, backoff_base: float | str = 0.5, backoff_max: float | str = 30.0,
                 jitter: float | str = 0.5, retry_timeout: float | str | None = None,
                 retry_on: Callable[[BaseException], bool] | None = None, rng: random.Random | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._configure_retry(max_retries=max_retries, backoff_base=backoff_base, backoff_max=backoff_max,
                              jitter=jitter, retry_timeout=retry_timeout, retry_on=retry_on, rng=rng)

    def _configure_retry(self, *, max_retries: int = 3, backoff_base: float | str = 0.5,
                         backoff_max: float | str = 30.0, jitter: float | str = 0.5,
                         retry_timeout: float | str | None = None,
                         retry_on: Callable[[BaseException], bool] | None = None,
                         rng: random.Random | None = None) -> None:
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be a whole number, zero or more, got {max_retries!r}")
        if retry_on is not None and not callable(retry_on):
            raise TypeError(f"retry_on must be a callable taking the exception, got {type(retry_on).__name__}")
        if rng is not None and not isinstance(rng, random.Random):
            raise TypeError(f"rng must be a random.Random, got {type(rng).__name__}")
        self._retry_max = max_retries
        self._retry_base = seconds("backoff_base", backoff_base)
        self._retry_cap = seconds("backoff_max", backoff_max)
        self._retry_jitter = seconds("jitter", jitter)
        self._retry_timeout = None if retry_timeout is None else seconds("retry_timeout", retry_timeout)
        if retry_on is not None:
            self._retry_on = retry_on
        self._retry_rng = rng if rng is not None else random.Random()

    def _backoff(self, retry: int, error: BaseException | None = None) -> float:
        """Seconds to wait before retry number `retry` (0 = the first retry)."""
        delay = min(self._retry_cap, self._retry_base * math.pow(2.0, min(retry, 60)))
        rng = getattr(self, "_retry_rng", None) or random.Random()
        delay += rng.uniform(0.0, self._retry_jitter) if self._retry_jitter else 0.0
        retry_after = getattr(error, "retry_after", None)
        if isinstance(retry_after, (int, float)) and not isinstance(retry_after, bool) and retry_after > delay:
            delay = float(retry_after)
        return delay

    def _retry(self, fn: Callable[..., T], *args: Any,
               retry_on: Callable[[BaseException], bool] | None = None, **kwargs: Any) -> T:
        """`fn(*args, **kwargs)`, retried on transient failures; raises the last failure."""
        transient = retry_on or self._retry_on
        started = self._now()
        retry = 0
        while True:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                if retry >= self._retry_max or not transient(exc):
                    raise
                delay = self._backoff(retry, exc)
                if self._retry_timeout is not None and self._now() + delay - started > self._retry_timeout:
                    raise
                self._on_retry(retry + 1, exc, delay)
                self._pause(delay)
                retry += 1

    def _on_retry(self, retry: int, error: BaseException, delay: float) -> None:
        """Hook: called before each wait (retry 1, 2, ...). Does nothing; override to log or count."""
