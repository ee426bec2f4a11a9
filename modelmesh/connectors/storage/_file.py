"""FileStorage: a directory, one file per entry, safe against `kill -9` and shared between processes.

Layout under `path`: `data/<name>` holds an entry, `locks/<name>` a lock, and `.mutex` is the
file whose `fcntl.flock` serialises every write among threads and processes. A name is the key
with everything but `[a-z0-9_-]` escaped as `%XX` (upper-case letters too, so that the names
stay distinct on a case-insensitive file system); a name that would be too long is cut and
given a hash of the key.

An entry file is one JSON header line (`{"k": key, "x": expires_at}`) and then the content.
It is written to a temporary file in the same directory, fsync'd, moved over the old one with
`os.replace`, and the directory is fsync'd: at any moment the name points at a whole old file or
a whole new one, never at a torn one. A writer killed before its `os.replace` leaves a
`.tmp-*` file; those older than `_STALE_TMP` seconds are removed when a store is opened.

Reads take no lock. Writes (`save`, `delete`, `add`, `raise_to`) and lock attempts take the
flock, so a read-modify-write cannot lose another's update. A lock file records its holder's
token and lease end; the flock only guards the check-and-set, so a crashed holder holds
nothing but a lease, which ends on its own. Expired entries are removed when the store is
opened and by `list`.
"""
from __future__ import annotations

import builtins
import contextlib
import errno
import fcntl
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator

from ..._atomic import write_atomically
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

__all__ = ["FileStorage"]

_SAFE = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-")
_MAX_NAME = 200  # well under NAME_MAX (255) with room for the temporary prefix and suffix
_STALE_TMP = 3600.0


def file_name(key: str) -> str:
    """The file name of `key`: reversible escaping, or (when too long) a cut plus a hash."""
    name = "".join(c if c in _SAFE else "".join(f"%{b:02X}" for b in c.encode("utf-8")) for c in key)
    if len(name) > _MAX_NAME:
        name = name[:120].rstrip("%0123456789ABCDEF") + "~" + hashlib.sha256(key.encode("utf-8")).hexdigest()
    return name


class FileStorage(BaseStorage):
    """Entries as files in the directory `path` (created if missing)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        lease: float = DEFAULT_LEASE,
        retry_interval: float = DEFAULT_RETRY_INTERVAL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(lease=lease, retry_interval=retry_interval, clock=clock)
        self.path = os.path.abspath(os.fspath(path))
        self._data = os.path.join(self.path, "data")
        self._locks = os.path.join(self.path, "locks")
        self._mutex_path = os.path.join(self.path, ".mutex")
        self._thread_lock = threading.Lock()  # flock is per open file: threads need their own mutex
        for directory in (self.path, self._data, self._locks):
            os.makedirs(directory, exist_ok=True)
        with self._mutex():
            self._remove_stale_temporaries()
            self._sweep(self._clock())

    def __repr__(self) -> str:
        return f"FileStorage({self.path!r})"

    # -- the pieces ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _mutex(self) -> Iterator[None]:
        with self._thread_lock:
            fd = os.open(self._mutex_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # closing drops the flock

    def _write(self, directory: str, name: str, data: bytes) -> None:
        write_atomically(os.path.join(directory, name), data, prefix=".tmp-")
        _fsync_dir(directory)

    def _read(self, directory: str, name: str) -> tuple[dict[str, object], bytes, float] | None:
        """(header, content, mtime) of a file, or None if there is none."""
        try:
            with open(os.path.join(directory, name), "rb") as fh:
                raw = fh.read()
                mtime = os.fstat(fh.fileno()).st_mtime
        except FileNotFoundError:
            return None
        head, _, content = raw.partition(b"\n")
        return json.loads(head), content, mtime

    def _entry(self, key: str, now: float) -> tuple[bytes, float] | None:
        """(content, mtime) of a live entry."""
        found = self._read(self._data, file_name(key))
        if found is None:
            return None
        header, content, mtime = found
        if header.get("k") != key:  # two long keys that share a cut name and hash prefix: not ours
            return None
        expires_at = header.get("x")
        if isinstance(expires_at, (int, float)) and expires_at <= now:
            return None
        return content, mtime

    def _put(self, key: str, content: bytes, expires_at: float | None) -> None:
        header = json.dumps({"k": key, "x": expires_at}, ensure_ascii=True).encode("ascii")
        self._write(self._data, file_name(key), header + b"\n" + content)

    def _unlink(self, directory: str, name: str) -> bool:
        try:
            os.unlink(os.path.join(directory, name))
        except FileNotFoundError:
            return False
        _fsync_dir(directory)
        return True

    def _remove_stale_temporaries(self) -> None:
        cutoff = time.time() - _STALE_TMP
        for directory in (self._data, self._locks):
            for name in os.listdir(directory):
                if name.startswith(".tmp-"):
                    with contextlib.suppress(OSError):
                        if os.stat(os.path.join(directory, name)).st_mtime < cutoff:
                            os.unlink(os.path.join(directory, name))

    def _sweep(self, now: float) -> None:
        """Remove expired entries; call under the mutex."""
        for name in os.listdir(self._data):
            if name.startswith("."):
                continue
            found = self._read(self._data, name)
            if found is not None:
                expires_at = found[0].get("x")
                if isinstance(expires_at, (int, float)) and expires_at <= now:
                    self._unlink(self._data, name)

    # -- the interface -------------------------------------------------------------------------

    def load(self, key: str) -> bytes | None:
        check_key(key)
        found = self._entry(key, self._clock())
        return None if found is None else found[0]

    def save(self, key: str, data: bytes) -> None:
        check_key(key)
        data = bytes(data)
        with self._mutex():
            self._put(key, data, None)

    def list(self, prefix: str = "") -> builtins.list[str]:
        keys = []
        with self._mutex():
            now = self._clock()
            self._sweep(now)
            for name in os.listdir(self._data):
                if not name.startswith("."):
                    found = self._read(self._data, name)
                    if found is not None and isinstance(key := found[0].get("k"), str) and key.startswith(prefix):
                        keys.append(key)
        return sorted(keys)

    def delete(self, key: str) -> bool:
        check_key(key)
        with self._mutex():
            return self._entry(key, self._clock()) is not None and self._unlink(self._data, file_name(key))

    def stat(self, key: str) -> Stat | None:
        check_key(key)
        found = self._entry(key, self._clock())
        return None if found is None else Stat(key, len(found[0]), found[1])

    def add(self, key: str, amount: float, *, expires_at: float) -> float:
        check_key(key)
        amount = check_number(amount, "amount")
        expires_at = check_number(expires_at, "expires_at")
        with self._mutex():
            now = self._clock()
            found = self._entry(key, now)
            total = (0.0 if found is None else parse_number(key, found[0])) + amount
            self._put_number(key, total, now, expires_at)
            return total

    def raise_to(self, key: str, value: float, *, expires_at: float) -> float:
        check_key(key)
        value = check_number(value, "value")
        expires_at = check_number(expires_at, "expires_at")
        with self._mutex():
            now = self._clock()
            found = self._entry(key, now)
            if found is not None:
                stored = parse_number(key, found[0])
                if stored >= value:
                    return stored
            self._put_number(key, value, now, expires_at)
            return value

    def _put_number(self, key: str, value: float, now: float, expires_at: float) -> None:
        if expires_at <= now:
            self._unlink(self._data, file_name(key))
        else:
            self._put(key, format_number(value), expires_at)

    def _held(self, name: str, now: float) -> tuple[str, float] | None:
        found = self._read(self._locks, file_name(name))
        if found is None:
            return None
        header = found[0]
        token, expires_at = header.get("token"), header.get("x")
        if header.get("k") != name or not isinstance(token, str) or not isinstance(expires_at, (int, float)):
            return None
        return (token, float(expires_at)) if expires_at > now else None

    def _try_acquire(self, name: str, token: str, lease: float) -> Lock | None:
        with self._mutex():
            now = self._clock()
            if self._held(name, now) is not None:
                return None
            lock = Lock(name, token, now + lease)
            header = json.dumps({"k": name, "token": token, "x": lock.expires_at}).encode("ascii")
            self._write(self._locks, file_name(name), header + b"\n")
            return lock

    def release(self, lock: Lock) -> bool:
        with self._mutex():
            held = self._held(lock.name, self._clock())
            if held is None or held[0] != lock.token:
                return False
            return self._unlink(self._locks, file_name(lock.name))

    def is_locked(self, name: str) -> bool:
        check_key(name, "lock name")
        return self._held(name, self._clock()) is not None


def _fsync_dir(directory: str) -> None:
    """Make a rename or unlink in `directory` durable (where the platform allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:  # some file systems refuse fsync on a directory
        if exc.errno not in (errno.EINVAL, errno.EBADF, errno.EACCES):
            raise
    finally:
        os.close(fd)
