"""Virtual keys: credentials for the proxy, each with its own pools, budget and rate, kept hashed
in the shared storage.

Theory of operation: `modelmesh keys create` makes a key of 32 random bytes
(`sk-mm-<43 url-safe characters>`), shows it once and stores only its SHA-256 (a key of 256
random bits needs no slow hash: nothing can be guessed from its digest, and a fast one
keeps the check off the hot path) as the record `vkey/<hex digest>`, through the store's
Serializer (encrypted when `storage.persistence.encryption` is on). A key's id is the first
16 hex digits of its digest: `list` and `revoke` name keys by it or by their name.

In the proxy, `KeyRing` holds a local copy of every record and reads them all again every
`refresh` seconds (`storage.persistence.sync_interval`) on the request path, one thread at a
time, the others going on with the copy they have: a revocation reaches every worker within
that interval. A digest that is not in the copy is looked up in the store once (so a key
made a moment ago works at once) and remembered as unknown until the next refresh.

Spend is counted per key and period (`vkey-spend/<id>/<day|month>/<period end>`, atomic
`add` when a request's answer is done, expiring when the period ends) from the cost the
mesh computes for it, and read (one read of the store) before each request of a key with a
budget: every worker's spend counts, and a budget is overshot by at most the requests of
that key in flight when it was reached.
"""
from __future__ import annotations

import base64
import calendar
import hashlib
import logging
import math
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..connectors.storage import StorageUnavailable

__all__ = ["KeyRing", "KeyStore", "VirtualKey", "digest", "period_end", "PREFIX", "PERIODS"]

_log = logging.getLogger("modelmesh.proxy")
PREFIX = "vkey/"
SPEND = "vkey-spend/"
PERIODS = ("day", "month")
_TOKEN_PREFIX = "sk-mm-"
_UNKNOWN_LIMIT = 10_000  # digests remembered as unknown between refreshes, at most


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def period_end(period: str, now: float) -> float:
    """When the UTC day or month containing `now` ends (seconds since the epoch)."""
    t = time.gmtime(now)
    if period == "day":
        return float(calendar.timegm((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0)) + 86400)
    year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
    return float(calendar.timegm((year, month, 1, 0, 0, 0)))


@dataclass(frozen=True, slots=True, kw_only=True)
class VirtualKey:
    """A key's record: never its plaintext, only its digest."""

    digest: str = field(repr=False)
    name: str
    pools: tuple[str, ...] | None = None   # None: every pool
    budget: float | None = None            # USD per `period`
    period: str = "day"
    rpm: float | None = None               # requests per minute
    created: float = 0.0
    revoked: float | None = None

    @property
    def id(self) -> str:
        return self.digest[:16]

    def to_dict(self) -> dict[str, Any]:
        return {"digest": self.digest, "name": self.name, "pools": list(self.pools) if self.pools is not None else None,
                "budget": self.budget, "period": self.period, "rpm": self.rpm, "created": self.created,
                "revoked": self.revoked}

    @classmethod
    def from_dict(cls, data: Any) -> VirtualKey:
        if not isinstance(data, dict) or not isinstance(data.get("digest"), str) or not isinstance(data.get("name"), str):
            raise ValueError("not a virtual key record")
        pools = data.get("pools")
        if pools is not None and not (isinstance(pools, list) and all(isinstance(p, str) for p in pools)):
            raise ValueError("its pools are not a list of names")
        if data.get("period", "day") not in PERIODS:
            raise ValueError("its period is neither day nor month")
        return cls(digest=data["digest"], name=data["name"], pools=tuple(pools) if pools is not None else None,
                   budget=_opt_number(data.get("budget")), period=data.get("period", "day"),
                   rpm=_opt_number(data.get("rpm")), created=float(data.get("created") or 0.0),
                   revoked=_opt_number(data.get("revoked")))


def _opt_number(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"expected a number, got {type(value).__name__}")
    return float(value)


def _spend_key(key_id: str, period: str, end: float) -> str:
    return f"{SPEND}{key_id}/{period}/{int(end)}"


class KeyStore:
    """The keys in a store: create, list, revoke (what `modelmesh keys` does) and read."""

    def __init__(self, storage: Any, serializer: Any, *, clock: Callable[[], float] = time.time) -> None:
        self.storage, self.serializer, self.clock = storage, serializer, clock

    def create(self, name: str, *, pools: Iterable[str] | None = None, budget: float | None = None,
               period: str = "day", rpm: float | None = None) -> tuple[str, VirtualKey]:
        """A new key: (its plaintext, to show once and forget; its record, as stored)."""
        if not name or not name.strip():
            raise ValueError("a key needs a name")
        if any(k.name == name and k.revoked is None for k in self.list()):
            raise ValueError(f"a key named {name!r} exists already; revoke it or choose another name")
        if period not in PERIODS:
            raise ValueError(f"--period: expected day or month, got {period!r}")
        if budget is not None and not (math.isfinite(budget) and budget > 0):
            raise ValueError(f"--budget: expected a positive amount of USD, got {budget!r}")
        if rpm is not None and not (math.isfinite(rpm) and rpm > 0):
            raise ValueError(f"--rpm: expected a positive number of requests per minute, got {rpm!r}")
        token = _TOKEN_PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
        key = VirtualKey(digest=digest(token), name=name, pools=tuple(pools) if pools is not None else None,
                         budget=budget, period=period, rpm=rpm, created=self.clock())
        self._save(key)
        return token, key

    def list(self) -> list[VirtualKey]:
        out = []
        for name, raw in self.storage.load_many(PREFIX).items():
            try:
                out.append(VirtualKey.from_dict(self.serializer.loads(raw, name)))
            except (ValueError, TypeError):
                continue  # not a key record (or under another encryption key): never trusted
        return sorted(out, key=lambda k: (k.created, k.name))

    def get(self, key_digest: str) -> VirtualKey | None:
        raw = self.storage.load(PREFIX + key_digest)
        if raw is None:
            return None
        try:
            return VirtualKey.from_dict(self.serializer.loads(raw, PREFIX + key_digest))
        except (ValueError, TypeError):
            return None

    def revoke(self, name_or_id: str) -> VirtualKey:
        """Revoke the live key with this name or id (or plaintext, which is never repeated);
        LookupError if there is none (or several)."""
        if name_or_id.startswith(_TOKEN_PREFIX):
            name_or_id = digest(name_or_id)[:16]
        found = [k for k in self.list() if k.revoked is None and name_or_id in (k.name, k.id)]
        if not found:
            raise LookupError(f"no live key has the name or id {name_or_id!r} (modelmesh keys list shows them)")
        if len(found) > 1:
            raise LookupError(f"{len(found)} live keys match {name_or_id!r}: give the id")
        key = VirtualKey(**{**_fields(found[0]), "revoked": self.clock()})
        self._save(key)
        return key

    def spent(self, key: VirtualKey, now: float) -> float:
        end = period_end(key.period, now)
        raw = self.storage.load(_spend_key(key.id, key.period, end))
        return float(raw) if raw is not None else 0.0

    def add_spend(self, key: VirtualKey, cost: float, now: float) -> float:
        end = period_end(key.period, now)
        return float(self.storage.add(_spend_key(key.id, key.period, end), cost, expires_at=end))

    def _save(self, key: VirtualKey) -> None:
        name = PREFIX + key.digest
        self.storage.save(name, self.serializer.dumps(key.to_dict(), name))


def _fields(key: VirtualKey) -> dict[str, Any]:
    return {f: getattr(key, f) for f in VirtualKey.__dataclass_fields__}


class KeyRing:
    """The proxy's view of the keys: a local copy read again every `refresh` seconds, and
    each key's spend as last known."""

    def __init__(self, store: KeyStore, *, refresh: float, clock: Callable[[], float] = time.time) -> None:
        self.store, self.refresh, self.clock = store, float(refresh), clock
        self._keys: dict[str, VirtualKey] = {}
        self._unknown: set[str] = set()
        self._read_at = -math.inf
        self._busy = threading.Lock()

    def find(self, token: str) -> VirtualKey | None:
        """The key whose plaintext is `token` (revoked ones included), or None."""
        self._maybe_refresh()
        d = digest(token)
        key = self._keys.get(d)
        if key is not None or d in self._unknown:
            return key
        key = self.store.get(d)
        if key is None:
            if len(self._unknown) < _UNKNOWN_LIMIT:
                self._unknown.add(d)
        else:
            self._keys[d] = key
        return key

    def over_budget(self, key: VirtualKey) -> float | None:
        """What the key has spent in its period, when that is at or over its budget; else None.
        Read from the store at each request (one read, no lock), so every worker's spend counts."""
        if key.budget is None:
            return None
        spent = self.store.spent(key, self.clock())
        return spent if spent >= key.budget else None

    def record_spend(self, key: VirtualKey, cost: float) -> None:
        if key.budget is not None and cost > 0:
            self.store.add_spend(key, cost, self.clock())

    def _maybe_refresh(self) -> None:
        now = self.clock()
        if now - self._read_at < self.refresh or not self._busy.acquire(blocking=False):
            return
        try:
            if now - self._read_at < self.refresh:
                return
            self._read_at = now  # a failed read is tried again after `refresh` too
            try:
                keys = {k.digest: k for k in self.store.list()}
            except StorageUnavailable as exc:
                _log.warning("modelmesh proxy: could not read the virtual keys (%s); going on with the copy "
                             "read before", exc)
                return
            self._keys, self._unknown = keys, set()
        finally:
            self._busy.release()
