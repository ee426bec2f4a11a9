"""CacheMixin: a TTL + LRU cache (cachetools) on the injected clock, with hit/miss stats.

Theory of operation: one `cachetools.TTLCache` per connector, timed by the mixins' clock, so
a test moves time with a FakeClock instead of waiting. An entry lives `ttl` seconds from
when it was set; when the cache is full the least recently used entry is evicted (counted
in `evictions`; entries that simply expired are not). cachetools is not thread-safe and a
connector is shared by threads, so every access holds the mixin's lock. A cached `None` is
a value: `_cache_get(key, default)` tells it apart from a miss by the default you pass.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

import cachetools

from ._base import Clocked, seconds

__all__ = ["CacheMixin", "CacheStats"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheStats:
    """Counters since the cache was made (or cleared with reset_stats=True)."""

    hits: int = 0
    misses: int = 0
    evictions: int = 0
    size: int = 0
    max_entries: int = 0

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class _CountingTTLCache(cachetools.TTLCache):
    """A TTLCache that counts its LRU evictions (cachetools evicts through popitem)."""

    evictions = 0

    def popitem(self) -> Any:
        item = super().popitem()
        self.evictions += 1
        return item


_MISSING = object()


class CacheMixin(Clocked):
    """`_cache_get` / `_cache_set` / `_cached(key, compute)` over a TTL + LRU cache."""

    _cache_store: _CountingTTLCache
    _cache_lock: threading.Lock
    _cache_hits: int = 0
    _cache_misses: int = 0

    def __init__(self, *, cache_ttl: float | str = 60.0, cache_max_entries: int = 1024, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._init_cache(ttl=cache_ttl, max_entries=cache_max_entries)

    def _init_cache(self, ttl: float | str = 60.0, max_entries: int = 1024) -> None:
        """(Re)make the cache: entries live `ttl` (seconds or "5m"); at most `max_entries`."""
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ValueError(f"cache max_entries must be a positive whole number, got {max_entries!r}")
        self._cache_store = _CountingTTLCache(maxsize=max_entries, ttl=seconds("cache ttl", ttl, positive=True),
                                              timer=self._now)
        self._cache_lock = threading.Lock()
        self._cache_hits = self._cache_misses = 0

    def _cache_get(self, key: Hashable, default: Any = None) -> Any:
        """The live value under `key`, else `default`."""
        with self._cache_lock:
            value = self._cache_store.get(key, _MISSING)
            if value is _MISSING:
                self._cache_misses += 1
                return default
            self._cache_hits += 1
            return value

    def _cache_set(self, key: Hashable, value: Any) -> None:
        """Store `value` for `ttl` seconds, evicting the least recently used entry when full."""
        with self._cache_lock:
            self._cache_store[key] = value

    def _cached(self, key: Hashable, compute: Callable[[], T]) -> T:
        """The cached value, or `compute()` stored and returned. `compute` runs outside the lock,
        so two threads missing at once may both compute; the later one's value is kept."""
        value = self._cache_get(key, _MISSING)
        if value is not _MISSING:
            return value
        result = compute()
        self._cache_set(key, result)
        return result

    def _cache_invalidate(self, key: Hashable) -> None:
        with self._cache_lock:
            self._cache_store.pop(key, None)

    def _cache_clear(self) -> None:
        with self._cache_lock:
            self._cache_store.clear()

    def _cache_stats(self) -> CacheStats:
        with self._cache_lock:
            self._cache_store.expire()
            return CacheStats(hits=self._cache_hits, misses=self._cache_misses,
                              evictions=self._cache_store.evictions, size=len(self._cache_store),
                              max_entries=int(self._cache_store.maxsize))
