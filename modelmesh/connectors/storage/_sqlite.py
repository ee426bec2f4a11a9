"""SQLiteStorage: one SQLite database file, shared by the threads and processes that open it.

The database runs in WAL mode with `synchronous=NORMAL`: readers do not block the writer, and a
committed write survives the death of its process (what `synchronous=NORMAL` gives up is only
the last commits before a power failure). Each thread has its own connection (sqlite3
connections must not be shared between threads without care); all of them are closed by
`close`.

Every write is one `BEGIN IMMEDIATE` transaction, which takes the write lock up front, so a
read-modify-write (`add`, `raise_to`, a lock attempt) cannot interleave with another. The
connection's `busy_timeout` is short (`_BUSY_MS`); when it runs out the transaction is tried
again, with a growing pause, until `timeout` seconds have passed, so one slow writer makes the
others wait rather than fail, and a stuck one makes them fail with StorageUnavailable rather
than hang.

Expired rows are invisible to reads, and deleted when the store is opened, by `list`, and by
a sweep every `_SWEEP_EVERY` writes of a connection.
"""
from __future__ import annotations

import builtins
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from ._base import (
    DEFAULT_LEASE,
    DEFAULT_RETRY_INTERVAL,
    BaseStorage,
    Lock,
    Stat,
    StorageUnavailable,
    check_key,
    check_number,
    format_number,
    parse_number,
)

__all__ = ["SQLiteStorage"]

_T = TypeVar("_T")
_BUSY_MS = 100
_SWEEP_EVERY = 256

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY NOT NULL,
    data BLOB NOT NULL,
    modified REAL NOT NULL,
    expires_at REAL
);
CREATE TABLE IF NOT EXISTS locks (
    name TEXT PRIMARY KEY NOT NULL,
    token TEXT NOT NULL,
    expires_at REAL NOT NULL
);
"""
_LIVE = "(expires_at IS NULL OR expires_at > ?)"


class SQLiteStorage(BaseStorage):
    """Entries and locks in the SQLite database at `path` (created if missing)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        timeout: float = 10.0,
        lease: float = DEFAULT_LEASE,
        retry_interval: float = DEFAULT_RETRY_INTERVAL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(lease=lease, retry_interval=retry_interval, clock=clock)
        self.path = os.path.abspath(os.fspath(path))
        self.timeout = check_number(timeout, "timeout")
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._closed = False
        self._retrying(lambda db: db.executescript(_SCHEMA), write=False)  # executescript runs its own transaction
        self._write(lambda db: self._sweep(db, self._clock()), sweep=False)

    def __repr__(self) -> str:
        return f"SQLiteStorage({self.path!r})"

    # -- connections and transactions ---------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection; sqlite3.OperationalError (busy) propagates to the retry loop."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            if self._closed:
                raise ValueError(f"{self!r} is closed")
            db = sqlite3.connect(self.path, timeout=_BUSY_MS / 1000, isolation_level=None, check_same_thread=False)
            try:
                db.execute("PRAGMA journal_mode=WAL")  # takes the write lock once, when the file is new
                db.execute("PRAGMA synchronous=NORMAL")
            except BaseException:
                db.close()
                raise
            self._local.db = db
            self._local.writes = 0
            with self._all_lock:
                self._all.append(db)
        return db

    def _retrying(self, work: Callable[[sqlite3.Connection], _T], *, write: bool) -> _T:
        deadline = time.monotonic() + self.timeout
        pause = 0.001
        while True:
            try:
                db = self._connection()
                if not write:
                    return work(db)
                db.execute("BEGIN IMMEDIATE")
                try:
                    result = work(db)
                    db.execute("COMMIT")
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
                return result
            except sqlite3.Error as exc:
                if not (isinstance(exc, sqlite3.OperationalError) and _busy(exc)):
                    raise StorageUnavailable(f"SQLite storage {self.path!r} failed: {exc}") from exc
                if time.monotonic() >= deadline:
                    raise StorageUnavailable(f"SQLite storage {self.path!r} stayed locked for {self.timeout:g} s") from exc
                time.sleep(pause * (0.5 + random.random()))
                pause = min(pause * 2, 0.05)

    def _write(self, work: Callable[[sqlite3.Connection], _T], *, sweep: bool = True) -> _T:
        result = self._retrying(work, write=True)
        if sweep:
            self._local.writes += 1
            if self._local.writes % _SWEEP_EVERY == 0:
                self._retrying(lambda db: self._sweep(db, self._clock()), write=True)
        return result

    def _read(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        return self._retrying(work, write=False)

    @staticmethod
    def _sweep(db: sqlite3.Connection, now: float) -> None:
        db.execute("DELETE FROM entries WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,))
        db.execute("DELETE FROM locks WHERE expires_at <= ?", (now,))

    def _row(self, db: sqlite3.Connection, key: str, now: float) -> Any:
        return db.execute(f"SELECT data, modified FROM entries WHERE key = ? AND {_LIVE}", (key, now)).fetchone()

    # -- the interface -------------------------------------------------------------------------

    def load(self, key: str) -> bytes | None:
        check_key(key)
        row = self._read(lambda db: self._row(db, key, self._clock()))
        return None if row is None else bytes(row[0])

    def save(self, key: str, data: bytes) -> None:
        check_key(key)
        data = bytes(data)

        def work(db: sqlite3.Connection) -> None:
            db.execute("INSERT OR REPLACE INTO entries (key, data, modified, expires_at) VALUES (?, ?, ?, NULL)",
                       (key, data, self._clock()))

        self._write(work)

    def list(self, prefix: str = "") -> builtins.list[str]:
        def work(db: sqlite3.Connection) -> builtins.list[str]:
            self._sweep(db, self._clock())
            # substr() rather than LIKE: a prefix may hold % or _, and LIKE ignores case
            rows = db.execute("SELECT key FROM entries WHERE substr(key, 1, ?) = ? ORDER BY key", (len(prefix), prefix))
            return [row[0] for row in rows]

        return self._write(work, sweep=False)

    def load_many(self, prefix: str = "") -> dict[str, bytes]:
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, not {type(prefix).__name__}")

        def work(db: sqlite3.Connection) -> dict[str, bytes]:  # one read, no write lock
            rows = db.execute(f"SELECT key, data FROM entries WHERE substr(key, 1, ?) = ? AND {_LIVE}",
                              (len(prefix), prefix, self._clock()))
            return {row[0]: bytes(row[1]) for row in rows}

        return self._read(work)

    def delete(self, key: str) -> bool:
        check_key(key)
        return self._write(lambda db: db.execute(f"DELETE FROM entries WHERE key = ? AND {_LIVE}",
                                                 (key, self._clock())).rowcount > 0)

    def stat(self, key: str) -> Stat | None:
        check_key(key)

        def work(db: sqlite3.Connection) -> Any:
            return db.execute(f"SELECT length(data), modified FROM entries WHERE key = ? AND {_LIVE}",
                              (key, self._clock())).fetchone()

        row = self._read(work)
        return None if row is None else Stat(key, int(row[0]), float(row[1]))

    def add(self, key: str, amount: float, *, expires_at: float) -> float:
        check_key(key)
        amount = check_number(amount, "amount")
        expires_at = check_number(expires_at, "expires_at")

        def work(db: sqlite3.Connection) -> float:
            now = self._clock()
            row = self._row(db, key, now)
            total = (0.0 if row is None else parse_number(key, bytes(row[0]))) + amount
            self._put_number(db, key, total, now, expires_at)
            return total

        return self._write(work)

    def raise_to(self, key: str, value: float, *, expires_at: float) -> float:
        check_key(key)
        value = check_number(value, "value")
        expires_at = check_number(expires_at, "expires_at")

        def work(db: sqlite3.Connection) -> float:
            now = self._clock()
            row = self._row(db, key, now)
            if row is not None:
                stored = parse_number(key, bytes(row[0]))
                if stored >= value:
                    return stored
            self._put_number(db, key, value, now, expires_at)
            return value

        return self._write(work)

    @staticmethod
    def _put_number(db: sqlite3.Connection, key: str, value: float, now: float, expires_at: float) -> None:
        if expires_at <= now:
            db.execute("DELETE FROM entries WHERE key = ?", (key,))
        else:
            db.execute("INSERT OR REPLACE INTO entries (key, data, modified, expires_at) VALUES (?, ?, ?, ?)",
                       (key, format_number(value), now, expires_at))

    def _try_acquire(self, name: str, token: str, lease: float) -> Lock | None:
        def work(db: sqlite3.Connection) -> Lock | None:
            now = self._clock()
            if db.execute("SELECT 1 FROM locks WHERE name = ? AND expires_at > ?", (name, now)).fetchone():
                return None
            lock = Lock(name, token, now + lease)
            db.execute("INSERT OR REPLACE INTO locks (name, token, expires_at) VALUES (?, ?, ?)",
                       (name, token, lock.expires_at))
            return lock

        return self._write(work)

    def release(self, lock: Lock) -> bool:
        return self._write(lambda db: db.execute("DELETE FROM locks WHERE name = ? AND token = ? AND expires_at > ?",
                                                 (lock.name, lock.token, self._clock())).rowcount > 0)

    def is_locked(self, name: str) -> bool:
        check_key(name, "lock name")
        row = self._read(lambda db: db.execute("SELECT 1 FROM locks WHERE name = ? AND expires_at > ?",
                                               (name, self._clock())).fetchone())
        return row is not None

    def close(self) -> None:
        with self._all_lock:
            self._closed = True
            connections, self._all = self._all, []
        for db in connections:
            db.close()
        self._local = threading.local()


def _busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text
