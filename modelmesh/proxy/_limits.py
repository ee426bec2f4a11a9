"""Token buckets per key and per client address, shared by every worker through the storage.

Theory of operation: a bucket of `burst` tokens refilled at `rate` tokens a second is kept as
one number, its theoretical arrival time (GCRA): the moment the bucket would be full again.
A request at `now` takes a token when `max(tat, now) + 1/rate - now <= burst/rate`, and
moves `tat` to that sum. Both steps are atomic operations of the store, so the bucket is one
for every worker sharing it, with no lock: `raise_to(tat, now)` (a bucket idle since it
filled starts from now) then `add(tat, 1/rate)`, which returns the new arrival time. A
request refused gives its token back (`add(tat, -1/rate)`); in the moment between, a
request of another worker may be refused that would have passed, never the other way round,
so the limit is never exceeded. A refusal says when a token will be there (`retry-after`).

Cost: two round trips of the store per bucket a request passes (three when refused): on
SQLite two short write transactions, on Redis two commands. With `memory` storage (one
worker) the buckets are this process's own. The clock is injected: tests move time.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Bucket", "Limiter", "PREFIX"]

PREFIX = "bucket/"


@dataclass(frozen=True, slots=True)
class Bucket:
    """`rpm` requests a minute, `burst` of them at once (default: a minute's worth)."""

    rpm: float
    burst: float | None = None

    @property
    def size(self) -> float:
        return self.burst if self.burst is not None else max(1.0, self.rpm)


class Limiter:
    def __init__(self, storage: Any, *, clock: Callable[[], float] = time.time) -> None:
        self.storage, self.clock = storage, clock

    def take(self, name: str, bucket: Bucket) -> float | None:
        """Take a token from the bucket `name`: None when taken, else the seconds until one is there."""
        now = self.clock()
        interval = 60.0 / bucket.rpm
        window = bucket.size * interval
        key = PREFIX + name
        expires = now + window + 60.0  # a bucket idle this long is full: nothing to keep
        self.storage.raise_to(key, now, expires_at=expires)
        tat = self.storage.add(key, interval, expires_at=expires)
        if tat - now <= window + 1e-9:
            return None
        self.storage.add(key, -interval, expires_at=expires)
        return max(0.001, tat - now - window)


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
