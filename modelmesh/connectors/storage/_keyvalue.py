"""KeyValueStorage: the whole storage contract over four primitive methods (seed 003).

Theory of operation. A backend that can get, set and delete a value by key and list keys by
prefix is enough: everything else of `BaseStorage` (stat, the atomic numbers, expiry, locks
with leases) is built here on those four. Each stored value is a small header line (when it
was written, when it expires) followed by the entry's bytes; entries live under keys starting
`e/` and locks under `l/`, so a lock and an entry of the same name never meet.

The defaults keep values in a dict of this object, so `KeyValueStorage()` is a working
in-process store; a subclass overrides `_get`, `_set`, `_delete` and `_keys` to keep them
somewhere else. Read-modify-write (`add`, `raise_to`, taking a lock) runs under this object's
lock: atomic between the threads of one process. Several processes sharing a backend need the
backend's own atomic operations: override `add`, `raise_to`, `_try_acquire` and `release`
with them (as the SQLite and Redis connectors do), or use those connectors.
"""
from __future__ import annotations

import builtins
import threading
import time
from collections.abc import Callable, Iterable

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

__all__ = ["KeyValueStorage"]

_ENTRY, _LOCK = "e/", "l/"


class KeyValueStorage(BaseStorage):
    """The storage contract over `_get`, `_set`, `_delete` and `_keys`; override those four."""

    def __init__(
        self,
        *,
        lease: float = DEFAULT_LEASE,
        retry_interval: float = DEFAULT_RETRY_INTERVAL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(lease=lease, retry_interval=retry_interval, clock=clock)
        self._guard = threading.RLock()
        self._data: dict[str, bytes] = {}

    # -- the primitives: override these four --------------------------------------------------

    def _get(self, key: str) -> bytes | None:
        """The value stored under `key`, or None."""
        return self._data.get(key)

    def _set(self, key: str, value: bytes) -> None:
        """Store `value` under `key`, replacing any value there."""
        self._data[key] = value

    def _delete(self, key: str) -> bool:
        """Remove `key`; True if there was a value."""
        return self._data.pop(key, None) is not None

    def _keys(self, prefix: str) -> Iterable[str]:
        """The keys starting with `prefix` (in any order)."""
        return [k for k in self._data if k.startswith(prefix)]

    # -- records --------------------------------------------------------------------------------

    def _read(self, raw_key: str, now: float) -> tuple[bytes, float, float | None] | None:
        """(data, modified, expires_at) of a live value; an expired one is deleted."""
        raw = self._get(raw_key)
        if raw is None:
            return None
        head, sep, data = bytes(raw).partition(b"\n")
        try:
            modified_text, expires_text = head.decode("ascii").split(" ")
            modified = float(modified_text)
            expires = None if expires_text == "-" else float(expires_text)
        except (UnicodeDecodeError, ValueError):
            raise ValueError(f"storage value {raw_key[len(_ENTRY):]!r} was not written by KeyValueStorage") from None
        if not sep:
            raise ValueError(f"storage value {raw_key[len(_ENTRY):]!r} was not written by KeyValueStorage")
        if expires is not None and expires <= now:
            self._delete(raw_key)
            return None
        return data, modified, expires

    def _write(self, raw_key: str, data: bytes, now: float, expires_at: float | None) -> None:
        expires = b"-" if expires_at is None else repr(float(expires_at)).encode("ascii")
        self._set(raw_key, repr(float(now)).encode("ascii") + b" " + expires + b"\n" + data)

    # -- the storage contract -------------------------------------------------------------------

    def load(self, key: str) -> bytes | None:
        check_key(key)
        with self._guard:
            record = self._read(_ENTRY + key, self._clock())
            return None if record is None else record[0]

    def save(self, key: str, data: bytes) -> None:
        check_key(key)
        data = bytes(data)
        with self._guard:
            self._write(_ENTRY + key, data, self._clock(), None)

    def list(self, prefix: str = "") -> builtins.list[str]:
        if not isinstance(prefix, str):
            raise TypeError(f"storage prefix must be a str, not {type(prefix).__name__}")
        with self._guard:
            now = self._clock()
            keys = builtins.list(self._keys(_ENTRY + prefix))
            return sorted(k[len(_ENTRY):] for k in keys if self._read(k, now) is not None)

    def delete(self, key: str) -> bool:
        check_key(key)
        with self._guard:
            return self._read(_ENTRY + key, self._clock()) is not None and self._delete(_ENTRY + key)

    def stat(self, key: str) -> Stat | None:
        check_key(key)
        with self._guard:
            record = self._read(_ENTRY + key, self._clock())
            return None if record is None else Stat(key, len(record[0]), record[1])

    def add(self, key: str, amount: float, *, expires_at: float) -> float:
        check_key(key)
        amount = check_number(amount, "amount")
        expires_at = check_number(expires_at, "expires_at")
        with self._guard:
            now = self._clock()
            record = self._read(_ENTRY + key, now)
            total = (0.0 if record is None else parse_number(key, record[0])) + amount
            self._store_number(key, total, now, expires_at)
            return total

    def raise_to(self, key: str, value: float, *, expires_at: float) -> float:
        check_key(key)
        value = check_number(value, "value")
        expires_at = check_number(expires_at, "expires_at")
        with self._guard:
            now = self._clock()
            record = self._read(_ENTRY + key, now)
            if record is not None:
                stored = parse_number(key, record[0])
                if stored >= value:
                    return stored
            self._store_number(key, value, now, expires_at)
            return value

    def _store_number(self, key: str, value: float, now: float, expires_at: float) -> None:
        if expires_at <= now:
            self._delete(_ENTRY + key)
        else:
            self._write(_ENTRY + key, format_number(value), now, expires_at)

    def _held(self, name: str, now: float) -> tuple[str, float] | None:
        raw = self._get(_LOCK + name)
        if raw is None:
            return None
        token, _, expires_text = bytes(raw).decode("ascii").partition(" ")
        expires = float(expires_text)
        return (token, expires) if expires > now else None

    def _try_acquire(self, name: str, token: str, lease: float) -> Lock | None:
        with self._guard:
            now = self._clock()
            if self._held(name, now) is not None:
                return None
            lock = Lock(name, token, now + lease)
            self._set(_LOCK + name, f"{token} {lock.expires_at!r}".encode("ascii"))
            return lock

    def release(self, lock: Lock) -> bool:
        with self._guard:
            held = self._held(lock.name, self._clock())
            if held is None or held[0] != lock.token:
                return False
            return self._delete(_LOCK + lock.name)

    def is_locked(self, name: str) -> bool:
        check_key(name, "lock name")
        with self._guard:
            return self._held(name, self._clock()) is not None
