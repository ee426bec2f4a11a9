"""The storage interface: what every connector promises, and the parts they share.

A store holds entries under string keys. An entry is bytes, written whole by `save` and read
whole by `load`; a reader sees the previous content or the new one, never a mix. Some entries
are numbers kept by `add` and `raise_to`: such an entry's content is its value in decimal ASCII
(`b"1000"`, `b"2.5"`), so `load`, `list`, `stat` and `delete` see it like any other entry, and
`float(load(key))` reads it without changing it.

Those two numeric writes are the only ones with an expiry: `expires_at` is an absolute
wall-clock time (seconds since the epoch), after which the entry is gone, as if deleted. An
expired entry is absent to every method; connectors also remove such entries in the background
of ordinary calls (see each one), so a key used once does not stay forever.

Locks are advisory and live beside the entries, in their own namespace: a lock name and a key
may be the same string without meeting. A lock has a token (only its holder releases it) and a
lease: a holder that crashes loses the lock when the lease ends, without anyone's help.

Every connector is synchronous and safe to share between threads; the file, SQLite and Redis
ones are also safe to share between processes. Wall-clock time comes from an injectable
`clock`, so tests move time instead of waiting for it.
"""
from __future__ import annotations

import abc
import builtins
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TypeVar

from ..._core._errors import ModelMeshError

__all__ = ["BaseStorage", "Lock", "Stat", "StorageUnavailable", "MAX_KEY_LENGTH", "check_key"]

MAX_KEY_LENGTH = 1024
DEFAULT_LEASE = 30.0
DEFAULT_RETRY_INTERVAL = 0.1

_S = TypeVar("_S", bound="BaseStorage")


class StorageUnavailable(ModelMeshError):
    """The storage backend could not be reached or did not answer in time.

    The message names the backend (with any password replaced by `***`), the operation and the
    key, and what went wrong.
    """


@dataclass(frozen=True, slots=True)
class Stat:
    """What is known about an entry without reading it: its size in bytes and when it was last written."""

    key: str
    size: int
    modified: float


@dataclass(frozen=True, slots=True)
class Lock:
    """A held lock: its name, the holder's token and the wall-clock end of its lease."""

    name: str
    token: str
    expires_at: float

    def __repr__(self) -> str:  # the token is the holder's proof: keep it out of logs
        return f"Lock(name={self.name!r}, expires_at={self.expires_at!r})"


def check_key(key: object, what: str = "key") -> str:
    """Return `key` if it is usable as a key (or lock name), else raise ValueError naming it."""
    if not isinstance(key, str):
        raise TypeError(f"storage {what} must be a str, not {type(key).__name__}: {key!r}")
    if not key:
        raise ValueError(f"storage {what} must not be empty")
    if len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"storage {what} is {len(key)} characters long, more than {MAX_KEY_LENGTH}: {key[:40]!r}...")
    if "\x00" in key:
        raise ValueError(f"storage {what} must not contain NUL: {key!r}")
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"storage {what} is not valid Unicode (a lone surrogate?): {key!r}") from None
    return key


def check_number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number, not {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{what} must be finite, not {number!r}")
    return number


def format_number(value: float) -> bytes:
    """A number as an entry's content: integers without a fraction, as Redis writes them."""
    if value.is_integer() and abs(value) < 2**53:
        return b"%d" % int(value)
    return repr(value).encode("ascii")


def parse_number(key: str, data: bytes) -> float:
    try:
        return float(data.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise ValueError(f"storage entry {key!r} does not hold a number ({len(data)} bytes of other data)") from None


def new_token() -> str:
    return secrets.token_hex(16)


class BaseStorage(abc.ABC):
    """The storage interface. Subclasses implement the abstract methods; `acquire`, `exists` and
    the context manager come from here.

    `lease` is how long a lock lasts unless released (seconds); `retry_interval` how often
    `acquire` tries again while it waits; `clock` returns the wall-clock time used for leases,
    expiry and modification times (not for `acquire`'s timeout, which is measured monotonically).
    """

    def __init__(
        self,
        *,
        lease: float = DEFAULT_LEASE,
        retry_interval: float = DEFAULT_RETRY_INTERVAL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if check_number(lease, "lease") <= 0:
            raise ValueError(f"lease must be positive, not {lease!r}")
        if check_number(retry_interval, "retry_interval") <= 0:
            raise ValueError(f"retry_interval must be positive, not {retry_interval!r}")
        self.lease = float(lease)
        self.retry_interval = float(retry_interval)
        self._clock = clock

    # -- persistence ---------------------------------------------------------------------------

    @abc.abstractmethod
    def load(self, key: str) -> bytes | None:
        """The content of `key`, or None when there is no such entry (or it has expired)."""

    @abc.abstractmethod
    def save(self, key: str, data: bytes) -> None:
        """Replace the content of `key` with `data`, atomically. A saved entry has no expiry
        (Redis gives it the connector's `default_ttl`, so that nothing there lives forever)."""

    # -- inventory -----------------------------------------------------------------------------

    @abc.abstractmethod
    def list(self, prefix: str = "") -> builtins.list[str]:
        """The keys that start with `prefix`, sorted."""

    def load_many(self, prefix: str = "") -> dict[str, bytes]:
        """Every live entry whose key starts with `prefix`, key -> content. Connectors that can
        read them in one round trip do (SQLite, Redis); this default lists, then loads each."""
        out: dict[str, bytes] = {}
        for key in self.list(prefix):
            data = self.load(key)
            if data is not None:  # deleted (or expired) since it was listed
                out[key] = data
        return out

    @abc.abstractmethod
    def delete(self, key: str) -> bool:
        """Remove `key`; True if there was such an entry."""

    # -- stat ----------------------------------------------------------------------------------

    @abc.abstractmethod
    def stat(self, key: str) -> Stat | None:
        """Size and modification time of `key`, or None when there is no such entry."""

    def exists(self, key: str) -> bool:
        """Whether there is an entry `key`."""
        return self.stat(key) is not None

    # -- atomic numbers ------------------------------------------------------------------------

    @abc.abstractmethod
    def add(self, key: str, amount: float, *, expires_at: float) -> float:
        """Add `amount` to the number at `key` (absent counts as 0) and return the new total.

        The entry expires at `expires_at` (wall clock, seconds since the epoch); each call sets
        that time anew. ValueError if `key` holds something that is not a number.
        """

    @abc.abstractmethod
    def raise_to(self, key: str, value: float, *, expires_at: float) -> float:
        """Keep the larger of the stored number and `value`; return what is stored afterwards.

        Only a raise writes: it stores `value` and `expires_at` together. A call that does not
        raise changes nothing, so a deadline only ever moves later, and its expiry with it.
        """

    # -- locking -------------------------------------------------------------------------------

    def acquire(self, name: str, timeout: float, *, lease: float | None = None) -> Lock | None:
        """Take the lock `name`, trying every `retry_interval` for up to `timeout` seconds.

        Returns the held Lock, or None if it could not be had in time (`timeout=0` tries once).
        The lock is held until `release` or until its lease (`lease`, else the store's) ends.
        """
        check_key(name, "lock name")
        if check_number(timeout, "timeout") < 0:
            raise ValueError(f"timeout must not be negative, not {timeout!r}")
        lease = self.lease if lease is None else check_number(lease, "lease")
        if lease <= 0:
            raise ValueError(f"lease must be positive, not {lease!r}")
        token = new_token()
        deadline = time.monotonic() + timeout
        while True:
            lock = self._try_acquire(name, token, lease)
            if lock is not None:
                return lock
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            time.sleep(min(self.retry_interval, remaining))

    @abc.abstractmethod
    def _try_acquire(self, name: str, token: str, lease: float) -> Lock | None:
        """One attempt: take `name` for `token` if it is free or its lease has ended."""

    @abc.abstractmethod
    def release(self, lock: Lock) -> bool:
        """Release `lock` if it is still held with its token; False if it was not (lease ended,
        someone else holds it now)."""

    @abc.abstractmethod
    def is_locked(self, name: str) -> bool:
        """Whether someone holds the lock `name` (with a lease not yet ended)."""

    # -- lifetime ------------------------------------------------------------------------------

    def close(self) -> None:
        """Release the connector's resources (connections, file handles). Idempotent."""
        return None

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
