"""MemoryStorage: a dict behind a lock, for one process. The default store.

Expired entries are absent to every read; they are dropped for good by `list` and, so that
keys used once do not pile up, by a sweep every `_SWEEP_EVERY` writes.
"""
from __future__ import annotations

import builtins
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ._base import (
    DEFAULT_LEASE,
    DEFAULT_RETRY_INTERVAL,
    BaseStorage,
    Lock,
    Stat,
    check_key,
    check_number,
    format_number,
    parse_number,
)

__all__ = ["MemoryStorage"]

_SWEEP_EVERY = 1024


@dataclass(frozen=True, slots=True)
class _Entry:
    data: bytes
    modified: float
    expires_at: float | None


class MemoryStorage(BaseStorage):
    """Entries and locks in this process's memory; thread-safe, gone when the process ends."""

    def __init__(
        self,
        *,
        lease: float = DEFAULT_LEASE,
        retry_interval: float = DEFAULT_RETRY_INTERVAL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(lease=lease, retry_interval=retry_interval, clock=clock)
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._locks: dict[str, Lock] = {}
        self._writes = 0

    def _live(self, key: str, now: float) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is not None and entry.expires_at is not None and entry.expires_at <= now:
            del self._entries[key]
            return None
        return entry

    def _wrote(self, now: float) -> None:
        self._writes += 1
        if self._writes % _SWEEP_EVERY == 0:
            self._sweep(now)

    def _sweep(self, now: float) -> None:
        for key in [k for k, e in self._entries.items() if e.expires_at is not None and e.expires_at <= now]:
            del self._entries[key]

    def load(self, key: str) -> bytes | None:
        check_key(key)
        with self._lock:
            entry = self._live(key, self._clock())
            return None if entry is None else entry.data

    def save(self, key: str, data: bytes) -> None:
        check_key(key)
        data = bytes(data)
        with self._lock:
            now = self._clock()
            self._entries[key] = _Entry(data, now, None)
            self._wrote(now)

    def list(self, prefix: str = "") -> builtins.list[str]:
        with self._lock:
            self._sweep(self._clock())
            return sorted(k for k in self._entries if k.startswith(prefix))

    def delete(self, key: str) -> bool:
        check_key(key)
        with self._lock:
            return self._live(key, self._clock()) is not None and self._entries.pop(key, None) is not None

    def stat(self, key: str) -> Stat | None:
        check_key(key)
        with self._lock:
            entry = self._live(key, self._clock())
            return None if entry is None else Stat(key, len(entry.data), entry.modified)

    def add(self, key: str, amount: float, *, expires_at: float) -> float:
        check_key(key)
        amount = check_number(amount, "amount")
        expires_at = check_number(expires_at, "expires_at")
        with self._lock:
            now = self._clock()
            entry = self._live(key, now)
            total = (0.0 if entry is None else parse_number(key, entry.data)) + amount
            self._store_number(key, total, now, expires_at)
            return total

    def raise_to(self, key: str, value: float, *, expires_at: float) -> float:
        check_key(key)
        value = check_number(value, "value")
        expires_at = check_number(expires_at, "expires_at")
        with self._lock:
            now = self._clock()
            entry = self._live(key, now)
            if entry is not None:
                stored = parse_number(key, entry.data)
                if stored >= value:
                    return stored
            self._store_number(key, value, now, expires_at)
            return value

    def _store_number(self, key: str, value: float, now: float, expires_at: float) -> None:
        if expires_at <= now:
            self._entries.pop(key, None)
        else:
            self._entries[key] = _Entry(format_number(value), now, expires_at)
        self._wrote(now)

    def _try_acquire(self, name: str, token: str, lease: float) -> Lock | None:
        with self._lock:
            now = self._clock()
            held = self._locks.get(name)
            if held is not None and held.expires_at > now:
                return None
            lock = self._locks[name] = Lock(name, token, now + lease)
            return lock

    def release(self, lock: Lock) -> bool:
        with self._lock:
            held = self._locks.get(lock.name)
            if held is None or held.token != lock.token or held.expires_at <= self._clock():
                return False
            del self._locks[lock.name]
            return True

    def is_locked(self, name: str) -> bool:
        check_key(name, "lock name")
        with self._lock:
            held = self._locks.get(name)
            return held is not None and held.expires_at > self._clock()
