"""RateLimiterMixin: a client-side token bucket on the injected clock.

Theory of operation: the bucket holds up to `burst` tokens and refills at `rate` tokens per
`per` seconds; a request takes `tokens` of them. The arithmetic is done under a lock on the
mixins' clock: `_try_acquire` takes tokens or says no, `_acquire` waits (with the injected
sleep) until they are there or `timeout` would pass. `_observe_rate_limit(headers)` lets the
provider's own word shape the bucket: when its headers (read by the core's parser) say no
requests remain until a reset, or give a Retry-After, the bucket is emptied until then.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

from ..._core._errors import RateLimitError
from ..._core._ratelimit import parse_rate_limit_headers
from ._base import Clocked, seconds

__all__ = ["RateLimiterMixin"]


class RateLimiterMixin(Clocked):
    _bucket_rate: float = 0.0    # tokens per second; 0 = no limit configured
    _bucket_burst: float = 1.0
    _bucket_tokens: float = 1.0
    _bucket_at: float = 0.0
    _bucket_blocked_until: float = 0.0
    _bucket_lock: threading.Lock

    def __init__(self, *, rate: float | None = None, per: float | str = 1.0, burst: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._bucket_lock = threading.Lock()
        if rate is not None:
            self.configure_rate_limit(rate, per=per, burst=burst)

    def configure_rate_limit(self, rate: float, per: float | str = 1.0, burst: int | None = None) -> None:
        """`rate` requests per `per` (seconds or "1m"), with bursts of up to `burst` (default: rate)."""
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not rate > 0 or rate == float("inf"):
            raise ValueError(f"rate must be a positive number of requests, got {rate!r}")
        period = seconds("per", per, positive=True)
        size = max(1.0, float(rate)) if burst is None else burst
        if isinstance(size, bool) or not isinstance(size, (int, float)) or size < 1:
            raise ValueError(f"burst must be a whole number of requests, 1 or more, got {burst!r}")
        with self._bucket_lock:
            self._bucket_rate = float(rate) / period
            self._bucket_burst = float(size)
            self._bucket_tokens = float(size)
            self._bucket_at = self._now()

    def _refill(self, now: float) -> None:
        if now > self._bucket_at:
            self._bucket_tokens = min(self._bucket_burst, self._bucket_tokens + (now - self._bucket_at) * self._bucket_rate)
            self._bucket_at = now

    def _wait_for(self, tokens: float, now: float) -> float:
        """Seconds until `tokens` are there (0 = now); the lock is held."""
        if not self._bucket_rate:
            return max(0.0, self._bucket_blocked_until - now)
        if tokens > self._bucket_burst:
            raise ValueError(f"asked for {tokens:g} tokens at once, more than the burst of {self._bucket_burst:g}")
        self._refill(now)
        wait = max(0.0, self._bucket_blocked_until - now)
        missing = tokens - self._bucket_tokens
        return max(wait, missing / self._bucket_rate if missing > 0 else 0.0)

    def _try_acquire(self, tokens: float = 1) -> bool:
        """Take `tokens` if they are there now."""
        with self._bucket_lock:
            now = self._now()
            if self._wait_for(tokens, now) > 0:
                return False
            if self._bucket_rate:
                self._bucket_tokens -= tokens
            return True

    def _acquire(self, tokens: float = 1, timeout: float | str | None = None) -> float:
        """Wait until `tokens` are there and take them; returns the seconds waited. Raises
        RateLimitError (with retry_after) when that would take longer than `timeout`."""
        limit = None if timeout is None else seconds("timeout", timeout)
        waited = 0.0
        while True:
            with self._bucket_lock:
                now = self._now()
                wait = self._wait_for(tokens, now)
                if wait <= 0:
                    if self._bucket_rate:
                        self._bucket_tokens -= tokens
                    return waited
            if limit is not None and waited + wait > limit:
                raise RateLimitError(f"{type(self).__name__}: client-side rate limit, "
                                     f"{wait:g}s until a request may go", retry_after=wait)
            self._pause(wait)
            waited += wait

    def _observe_rate_limit(self, headers: Mapping[str, str]) -> None:
        """Let a response's rate-limit headers hold requests back until the provider's reset."""
        info = parse_rate_limit_headers(headers, time.time())  # Anthropic's resets are wall-clock timestamps
        hold = info.retry_after
        if info.remaining_requests == 0 and info.reset_requests is not None:
            hold = max(hold or 0.0, info.reset_requests)
        if hold:
            with self._bucket_lock:
                now = self._now()
                self._bucket_blocked_until = max(self._bucket_blocked_until, now + hold)

    def rate_limit_stats(self) -> dict[str, float]:
        with self._bucket_lock:
            now = self._now()
            if self._bucket_rate:
                self._refill(now)
            return {"rate_per_second": self._bucket_rate, "burst": self._bucket_burst,
                    "tokens": self._bucket_tokens if self._bucket_rate else float("inf"),
                    "blocked_for": max(0.0, self._bucket_blocked_until - now)}
