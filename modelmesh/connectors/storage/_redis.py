"""RedisStorage: entries and locks in Redis, shared by every process that reaches the server.

Every key lives under `prefix`: an entry `key` is the hash `{prefix}k:{key}` with the fields
`v` (content) and `t` (modification time), a lock `name` is the string `{prefix}l:{name}`
holding its holder's token. Every key has a TTL, so a forgotten one cannot live forever: a
saved entry gets `default_ttl` (30 days unless told), a number its `expires_at` (PEXPIREAT),
a lock its lease (SET NX PXAT, Redis 6.2 or later).

Each write is one command or one Lua script, which Redis runs without interleaving: `add` is
HINCRBYFLOAT plus PEXPIREAT in one script, `raise_to` a compare-and-set script, `release` a
compare-and-delete on the token. Numbers are summed by Redis in long double precision; sums of
integers and of halves are exact, as everywhere else.

Any failure to reach the server (refused, reset, timed out after `socket_timeout` seconds, auth
refused) raises StorageUnavailable, whose message names the server with its password replaced
by `***`. A broken connection is retried once, at once, so the first call after the server
comes back works; redis-py is imported only when a RedisStorage is made.
"""
from __future__ import annotations

import builtins
import contextlib
import re
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..._core._errors import redact
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
)

__all__ = ["RedisStorage", "redact_url"]

DEFAULT_TTL = 30 * 24 * 3600.0

_SAVE = """
redis.call('HSET', KEYS[1], 'v', ARGV[1], 't', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
"""
_ADD = """
local total = redis.call('HINCRBYFLOAT', KEYS[1], 'v', ARGV[1])
redis.call('HSET', KEYS[1], 't', ARGV[2])
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
return total
"""
_RAISE_TO = """
local stored = redis.call('HGET', KEYS[1], 'v')
if stored then
    local number = tonumber(stored)
    if number == nil then
        return redis.error_reply('ERR hash value is not a float')
    end
    if number >= tonumber(ARGV[1]) then
        return stored
    end
end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 't', ARGV[2])
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
return ARGV[1]
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""
_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")
_QUERY_PASSWORD = re.compile(r"(?i)(password=)[^&#]*")


def redact_url(url: str) -> tuple[str, list[str]]:
    """`url` with its password (user-info or `?password=`) replaced by `***`, and the passwords found."""
    secrets: list[str] = [m.group(0)[len("password="):] for m in _QUERY_PASSWORD.finditer(url)]
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unparseable Redis URL>", secrets
    shown = url
    if password:
        secrets.append(password)
        user = parts.username or ""
        host = parts.netloc.rpartition("@")[2]
        shown = urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
    shown = _QUERY_PASSWORD.sub(r"\1***", shown)
    return shown, [s for s in secrets if s]


def _ms(seconds: float) -> int:
    return int(round(seconds * 1000))


class RedisStorage(BaseStorage):
    """Entries and locks in the Redis server at `url` (redis://, rediss:// or unix://), under `prefix`."""

    def __init__(
        self,
        url: str = "redis://localhost:6379/0",
        *,
        prefix: str = "modelmesh:",
        default_ttl: float = DEFAULT_TTL,
        socket_timeout: float = 5.0,
        lease: float = DEFAULT_LEASE,
        retry_interval: float = DEFAULT_RETRY_INTERVAL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(lease=lease, retry_interval=retry_interval, clock=clock)
        if not isinstance(prefix, str):
            raise TypeError(f"Redis prefix must be a str, not {type(prefix).__name__}")
        if check_number(default_ttl, "default_ttl") <= 0:
            raise ValueError(f"default_ttl must be positive, not {default_ttl!r}")
        if check_number(socket_timeout, "socket_timeout") <= 0:
            raise ValueError(f"socket_timeout must be positive, not {socket_timeout!r}")
        self.url, self._secrets = redact_url(url)
        self.prefix = prefix
        self.default_ttl = float(default_ttl)
        try:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry
        except ImportError:
            raise ImportError("RedisStorage needs the redis package: pip install 'modelmesh-lite[redis]'") from None
        self._redis = redis
        try:
            self._client = redis.Redis.from_url(
                url,
                socket_timeout=socket_timeout,
                socket_connect_timeout=socket_timeout,
                retry=Retry(NoBackoff(), 1),
                retry_on_error=[redis.exceptions.ConnectionError],
            )
        except ValueError as exc:
            raise ValueError(f"bad Redis URL {self.url!r}: {redact(str(exc), self._secrets)}") from None
        self._save = self._client.register_script(_SAVE)
        self._add = self._client.register_script(_ADD)
        self._raise_to = self._client.register_script(_RAISE_TO)
        self._release = self._client.register_script(_RELEASE)

    def __repr__(self) -> str:
        return f"RedisStorage({self.url!r}, prefix={self.prefix!r})"

    @contextlib.contextmanager
    def _errors(self, what: str, key: str) -> Iterator[None]:
        """Translate redis-py's exceptions at the boundary, without the password."""
        errors = self._redis.exceptions
        try:
            yield
        except (errors.ConnectionError, errors.TimeoutError) as exc:
            detail = redact(f"{type(exc).__name__}: {exc}", self._secrets)
            raise StorageUnavailable(f"Redis storage {self.url} unavailable ({what} {key!r}): {detail}") from None
        except errors.ResponseError as exc:
            text = str(exc)
            if "not a float" in text or "not a valid float" in text:
                raise ValueError(f"storage entry {key!r} does not hold a number") from None
            raise StorageUnavailable(f"Redis storage {self.url} refused {what} {key!r}: {redact(text, self._secrets)}") from None
        except errors.RedisError as exc:
            raise StorageUnavailable(f"Redis storage {self.url} failed ({what} {key!r}): "
                                     f"{redact(str(exc), self._secrets)}") from None

    def _k(self, key: str) -> str:
        return f"{self.prefix}k:{check_key(key)}"

    def _l(self, name: str) -> str:
        return f"{self.prefix}l:{check_key(name, 'lock name')}"

    # -- the interface -------------------------------------------------------------------------

    def load(self, key: str) -> bytes | None:
        k = self._k(key)
        with self._errors("load", key):
            data: Any = self._client.hget(k, "v")
        return None if data is None else bytes(data)

    def save(self, key: str, data: bytes) -> None:
        k = self._k(key)
        data = bytes(data)
        with self._errors("save", key):
            self._save(keys=[k], args=[data, repr(self._clock()), _ms(self.default_ttl)])

    def list(self, prefix: str = "") -> builtins.list[str]:
        start, pattern = self._match(prefix)
        with self._errors("list", prefix):
            found = {raw.decode("utf-8")[len(start):] for raw in self._client.scan_iter(match=pattern, count=1000)}
        return sorted(found)

    def _match(self, prefix: str) -> tuple[str, str]:
        """(where this store's entry names start, a SCAN pattern for those under `prefix`)."""
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, not {type(prefix).__name__}")
        start = f"{self.prefix}k:"
        return start, _GLOB_SPECIAL.sub(r"\\\1", start + prefix) + "*"

    def load_many(self, prefix: str = "") -> dict[str, bytes]:
        start, pattern = self._match(prefix)
        with self._errors("load_many", prefix):
            names = [raw.decode("utf-8") for raw in self._client.scan_iter(match=pattern, count=1000)]
            if not names:
                return {}
            pipe = self._client.pipeline(transaction=False)  # every read in one round trip
            for name in names:
                pipe.hget(name, "v")
            values = pipe.execute()
        return {name[len(start):]: bytes(v) for name, v in zip(names, values, strict=True) if v is not None}

    def delete(self, key: str) -> bool:
        k = self._k(key)
        with self._errors("delete", key):
            return int(self._client.delete(k)) > 0

    def stat(self, key: str) -> Stat | None:
        k = self._k(key)
        with self._errors("stat", key):
            pipe = self._client.pipeline()
            pipe.hstrlen(k, "v")
            pipe.hget(k, "t")
            size, modified = pipe.execute()
        if modified is None:
            return None
        return Stat(key, int(size), float(modified))

    def add(self, key: str, amount: float, *, expires_at: float) -> float:
        k = self._k(key)
        amount = check_number(amount, "amount")
        expires_at = check_number(expires_at, "expires_at")
        with self._errors("add to", key):
            total: Any = self._add(keys=[k], args=[repr(amount), repr(self._clock()), _ms(expires_at)])
        return float(total)

    def raise_to(self, key: str, value: float, *, expires_at: float) -> float:
        k = self._k(key)
        value = check_number(value, "value")
        expires_at = check_number(expires_at, "expires_at")
        with self._errors("raise", key):
            stored: Any = self._raise_to(keys=[k], args=[format_number(value), repr(self._clock()), _ms(expires_at)])
        return float(stored)

    def _try_acquire(self, name: str, token: str, lease: float) -> Lock | None:
        lock = Lock(name, token, self._clock() + lease)
        with self._errors("acquire lock", name):
            taken = self._client.set(self._l(name), token, nx=True, pxat=_ms(lock.expires_at))
        return lock if taken else None

    def release(self, lock: Lock) -> bool:
        with self._errors("release lock", lock.name):
            return int(self._release(keys=[self._l(lock.name)], args=[lock.token])) > 0

    def is_locked(self, name: str) -> bool:
        with self._errors("check lock", name):
            return int(self._client.exists(self._l(name))) > 0

    def close(self) -> None:
        self._client.close()
