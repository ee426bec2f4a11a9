"""Shared health for the sync shell: this process's standbys out to storage, the others' in.

Theory of operation: the core reduces health to facts (`_core/_sharing.py`: a standby with
its deadline and reason, or a recovery, per model and per provider). `SharedHealth.sync`
reads every stored fact (`health/<key>`) and hands that account to the core to honour.
Every write of facts also adds 1 to the counter `health-version`, so a sync first reads
that one number and reads the facts only when it moved since its last full read (one round
trip instead of a scan and a read of every fact, which is what `immediate` pays before each
request); a sync asked for by hand, and one every REPUSH_EVERY seconds, reads them all
anyway (a store wiped meanwhile, or a writer that does not count). When
some fact of ours changed since we last wrote it (and every REPUSH_EVERY seconds, and after an
outage, so that a store that lost its data is refilled), it does so under the store's lock
`health-sync`, writing each changed fact merged over the stored one (a standby is only ever
extended; a later recovery ends it). One exchange runs at a time in a process; a request that
finds one running does not wait for it. The core never sees storage; storage never sees the
core's objects, only plain data through a Serializer.

Budgets are shared too. After a request served by a provider with a daily or monthly
budget, its cost is added to the store's counters of the current day and month
(`spend/<provider>/day/<end>`, atomic `add`, expiring when the period ends) and the totals,
every process's spend, come back to the core; each sync also reads them. A process thus
decides on what all of them have spent, known as of its own last request: the overshoot of
a budget is at most one request in flight per process.

Per-model limits of a pool (`request_limit`, `token_limit`, `budget_limit`, in their
`quota_window`) are counted the same way, in `usage/<pool>/<model>/<period end>/...`.

Recovery probes take a lease in the store (`probe/<key>`, lasting the probe's timeout): one
process at a time probes a model or provider; the others skip it, and its verdict reaches
them with the shared facts.

`storage.locking.enabled: false` takes neither of these advisory locks: facts are written
without the `health-sync` lock (two processes writing the same fact at the same moment: the
last writer wins, and the loser's account, say a later deadline, is back in the store at its
next full write, within REPUSH_EVERY), and every process probes its standbys itself, as it
would alone. What it saves is the lock's round trips on each write. The connectors' own
atomicity (an SQLite transaction, the file store's flock around a write, a Redis script) is
not advisory and always holds: no record is ever torn, and counters are never lost.

Requests per minute are shared where selection reads them (a pool's `rate_limit.max_rpm`,
a provider's `rate_limits.rpm`). A sliding minute is not a counter that `add` can keep, so
each process writes its own count of the last minute per model (`rate/<host>:<pid>:<id>`,
when it changed since it last wrote it, and at least every RATE_REFRESH seconds) and
reads the others' at each sync; their sum is what the core adds to its own count. An
account fades with its age (a count taken t seconds ago counts (60 - t)/60) and is gone
after a minute, so a process that died without closing stops weighing; a closed one
deletes its own. Others' requests are thus known as of their last sync: under `immediate`
before every request, under `periodic` within `sync_interval`.

Each process also keeps a heartbeat in the store (`process/<host>:<pid>:<id>`): its host and
pid, when it last synced, how many facts it holds and which of them are standbys, when it
last wrote facts and how many it has written. It is rewritten at a successful sync once
HEARTBEAT_EVERY seconds have passed (or when asked for by hand, as `modelmesh status`
does), carries its own end (`expires`: three heartbeats, or three sync intervals if longer),
and is deleted when the client closes. At each heartbeat the others' are read (expired ones
are deleted): `status()["storage"]["processes"]` shows the live ones as of then, and this
process's own as of now. Heartbeats go through the Serializer, encrypted when records are.

A storage that cannot be reached (a Redis restart, a locked file) does not fail a request:
the sync reports False, logs one warning per outage, and the process goes on with what it
knows. Nor does it stall every request: after a failure, syncs that are not asked for by
hand are skipped for a backoff (1 s, doubling to 30 s) before storage is tried again. A
stored record that is not a fact (written by something else, or damaged) is skipped with a
warning, never trusted.
"""
from __future__ import annotations

import logging
import math
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from .._core._mesh import MeshCore
from .._core._sharing import Fact, live, merged
from ..connectors.storage import StorageUnavailable  # this module loads only when storage is configured

__all__ = ["SharedHealth"]

_log = logging.getLogger("modelmesh")
PREFIX = "health/"
REPUSH_EVERY = 30.0  # seconds between writes of every fact of ours, changed or not
LOCK = "health-sync"
VERSION = "health-version"  # a counter: every write of facts adds 1
_UNSEEN = object()  # no full read to compare with: the next sync reads every fact
PROCESSES = "process/"
HEARTBEAT_EVERY = 5.0  # seconds (of the client's clock) between heartbeats
RATES = "rate/"
RATE_REFRESH = 20.0  # seconds after which an unchanged count of ours is written again
MINUTE = 60.0


class SharedHealth:
    def __init__(self, core: MeshCore, storage: Any, serializer: Any, *, clock: Callable[[], float],
                 lock_timeout: float, emit: Callable[[list], None]) -> None:
        self.core = core
        self.storage = storage
        self.serializer = serializer
        self.clock = clock
        self.lock_timeout = lock_timeout
        self.emit = emit
        self.locking = bool(core.config.storage.locking_enabled)  # the advisory locks above; see the docstring
        self.last_sync: float | None = None  # when a sync last succeeded (for status)
        self._host, self._pid, self._started = socket.gethostname(), os.getpid(), clock()
        self._heartbeat_key = f"{PROCESSES}{self._host}:{self._pid}:{secrets.token_hex(4)}"
        self._heartbeat_at: float | None = None  # clock() of our last heartbeat
        self._rate_key = RATES + self._heartbeat_key[len(PROCESSES):]
        self._rate_pushed: tuple[list[Any], float] | None = None  # our counts as last written, and when
        self._heartbeat_ttl = 3 * max(HEARTBEAT_EVERY, float(core.config.storage.sync_interval))
        self._peers: list[dict[str, Any]] = []  # the other processes' heartbeats, as of our last
        self._last_push: float | None = None  # clock() when facts of ours were last written
        self._written = 0  # facts of ours written to the store, in all
        self._budgeted = frozenset(core.budgeted())
        self._limited = frozenset(core.limited())
        self._rated = sorted(set(core.rate_counted()))
        self._pushed: dict[str, Fact] = {}  # our facts as last written: only a changed one is written again
        self._pushed_version = -1  # the core's health version our facts were taken at
        self._busy = threading.Lock()  # one exchange at a time per process
        self._repush_at = 0.0  # time.monotonic() when every fact of ours is written again
        self._seen: Any = _UNSEEN  # the store's health version at our last full read
        self._failing = False
        self._backoff = 0.0
        self._retry_at = 0.0  # time.monotonic() before which an automatic sync does not try storage

    def changed(self) -> bool:
        """Whether this process saw a standby or recovery since its facts were last written."""
        return self.core.health_version != self._pushed_version

    def sync(self, *, force: bool = True, patient: bool = True) -> bool:
        """Exchange facts with the other processes now; False if storage could not be used.
        `force=False` (the automatic syncs) skips storage while backing off from a failure;
        `patient=False` (a sync in a request's path) waits at most half a second for the
        store's lock, and not at all for another thread of this process already syncing
        (that exchange is as fresh as this one would be)."""
        if not force and self._backing_off():
            return False
        if not self._busy.acquire(blocking=patient):
            return not self._failing
        try:
            return self._exchange(patient, force=force)
        finally:
            self._busy.release()

    def _exchange(self, patient: bool, force: bool) -> bool:
        now = self.clock()
        version = self.core.health_version
        mine = self.core.facts(now)
        if time.monotonic() >= self._repush_at:  # a store that lost its data (a Redis restart) is refilled
            self._pushed.clear()
            self._seen = _UNSEEN
            self._repush_at = time.monotonic() + REPUSH_EVERY
        changed = {key: fact for key, fact in mine.items() if self._pushed.get(key) != fact}
        stored: dict[str, Fact] | None
        try:
            if changed and not self.locking:
                stored = self._write(changed)
            elif changed:  # only a write needs the lock: reads of whole records are atomic
                wait = self.lock_timeout if patient else min(self.lock_timeout, 0.5)
                held = self.storage.acquire(LOCK, wait)
                if held is None:
                    return self._failed(f"the lock {LOCK!r} was not free within {wait:g}s")
                try:
                    stored = self._write(changed)
                finally:
                    self.storage.release(held)
            else:
                stored = self._read_if_moved(force)
            self._pull_spend(now)
            self._pull_usage(now)
            if self._rated:
                self._share_rates(now)
            if force or self._heartbeat_at is None or now - self._heartbeat_at >= HEARTBEAT_EVERY:
                self._heartbeat(now, mine)
        except StorageUnavailable as exc:
            return self._failed(str(exc))
        self._pushed_version = version
        if stored is not None:  # None: the stored facts are those the core took in last time
            self.emit(self.core.absorb(stored, now))
        self.last_sync = now
        if self._failing:
            self._failing, self._backoff = False, 0.0
            _log.warning("modelmesh: shared storage is back; health is shared again")
        return True

    def _write(self, changed: dict[str, Fact]) -> dict[str, Fact]:
        """Write each changed fact of ours merged over the stored one; the stored facts after."""
        stored = self._read()
        wrote = False
        for key, fact in changed.items():
            agreed = merged(stored.get(key), fact)
            if agreed != stored.get(key):
                assert agreed is not None  # merged() of a fact and anything is a fact
                self.storage.save(PREFIX + key, self.serializer.dumps(agreed.to_dict(), PREFIX + key))
                stored[key] = agreed
                wrote = True
        if wrote:  # the others read the facts again; so do we (without the lock, another may have written too)
            self.storage.add(VERSION, 1, expires_at=self.clock() + _NEVER)
            self._seen = _UNSEEN
        self._pushed.update(changed)
        self._last_push, self._written = self.clock(), self._written + len(changed)
        return stored

    def _read_if_moved(self, full: bool) -> dict[str, Fact] | None:
        """Every stored fact, or None when the store's health version says none was written
        since our last full read (and `full` is False)."""
        version = self.storage.load(VERSION)  # before the facts: a write after it shows next time
        if not full and version == self._seen:
            return None
        stored = self._read()
        self._seen = version
        return stored

    def _heartbeat(self, now: float, mine: dict[str, Fact]) -> None:
        """Write ours, read the others' (deleting those that have ended)."""
        record = dict(self._mine(now, mine), last_sync=now)  # this sync succeeds: it is the last
        self.storage.save(self._heartbeat_key, self.serializer.dumps(record, self._heartbeat_key))
        self._heartbeat_at = now
        peers = []
        for key, raw in self.storage.load_many(PROCESSES).items():
            if key == self._heartbeat_key:
                continue
            try:
                peer = _heartbeat_record(self.serializer.loads(raw, key))
            except (ValueError, TypeError) as exc:
                _log.warning("modelmesh: skipping stored heartbeat %r, which is not one (%s)", key, exc)
                continue
            if peer["expires"] <= now:
                self.storage.delete(key)  # that process stopped without closing (or its clock is far behind)
            else:
                peers.append(peer)
        self._peers = sorted(peers, key=lambda p: (p["host"], p["pid"]))

    def _share_rates(self, now: float) -> None:
        """Write our requests per model in the last minute (if changed), read the others'."""
        counts = [[pool, ref, n] for (pool, ref), n in self.core.last_minute(self._rated, now).items() if n]
        pushed = self._rate_pushed
        stale = pushed is not None and (pushed[0] != counts or now - pushed[1] >= RATE_REFRESH)
        if stale or (pushed is None and counts):  # a process that never sent writes nothing
            record = {"at": now, "counts": counts}
            self.storage.save(self._rate_key, self.serializer.dumps(record, self._rate_key))
            self._rate_pushed = (counts, now)
        others: dict[tuple[str, str], float] = {}
        for key, raw in self.storage.load_many(RATES).items():
            if key == self._rate_key:
                continue
            try:
                at, theirs = _rate_record(self.serializer.loads(raw, key))
            except (ValueError, TypeError) as exc:
                _log.warning("modelmesh: skipping stored request rate %r, which is not one (%s)", key, exc)
                continue
            weight = min(1.0, (MINUTE - (now - at)) / MINUTE)
            if weight <= 0:
                self.storage.delete(key)  # a minute old: that process stopped without closing
                continue
            for pair, n in theirs.items():
                others[pair] = others.get(pair, 0.0) + n * weight
        self.core.absorb_last_minute({pair: round(n) for pair, n in others.items() if pair in self._rated})

    def _mine(self, now: float, mine: dict[str, Fact]) -> dict[str, Any]:
        return {"host": self._host, "pid": self._pid, "started": self._started, "last_sync": self.last_sync,
                "facts": len(mine), "standby": sorted(k for k, f in mine.items() if live(f, now)),
                "last_push": self._last_push, "written": self._written, "expires": now + self._heartbeat_ttl}

    def close(self) -> None:
        """This process stops sharing: its heartbeat goes (it is no longer a live process), then
        the store is closed. A store that cannot be reached keeps it until it expires."""
        try:
            if self._heartbeat_at is not None:
                self.storage.delete(self._heartbeat_key)
            if self._rate_pushed is not None:
                self.storage.delete(self._rate_key)
        except StorageUnavailable:
            pass
        finally:
            self.storage.close()

    def probe_lease(self, probe: Any) -> Any:
        """The store's lease on sending `probe` (one process at a time probes a model or a
        provider): the held lock, False when another process holds it, None when the store
        cannot say or locking is off (this process then probes, as it would alone)."""
        if not self.locking or self._backing_off():
            return None
        try:
            held = self.storage.acquire(f"probe/{probe.key}", 0, lease=probe.timeout + 1.0)
        except StorageUnavailable as exc:
            self._failed(str(exc))
            return None
        return False if held is None else held

    def end_probe_lease(self, held: Any) -> None:
        try:
            self.storage.release(held)
        except StorageUnavailable as exc:  # the lease runs out by itself
            self._failed(str(exc))

    def describe(self) -> dict[str, Any]:
        """What `status()` shows of the sharing: the store, when it last worked, whether it does
        now, and the live processes sharing it: this one as of now (`"this": True`), the others
        as of their heartbeats when this process last read them (`heard_at`)."""
        now = self.clock()
        me = dict(self._mine(now, self.core.facts(now)), this=True)
        del me["expires"]
        others = [dict(p, this=False) for p in self._peers if p["expires"] > now]
        return {"connector": type(self.storage).__name__, "last_sync": self.last_sync, "reachable": not self._failing,
                "locking": self.locking, "heard_at": self._heartbeat_at, "processes": [me, *others]}

    def record_spend(self, provider: str, cost: float) -> None:
        """A request served by `provider` cost `cost`: add it to the shared counters of the
        provider's budget periods and take every process's totals back. Only for providers
        with a budget; skipped (the spend stays this process's own) while storage is down."""
        if cost <= 0 or provider not in self._budgeted or self._backing_off():
            return
        now = self.clock()
        day_end, month_end = self.core.spend_periods(provider, now)
        try:
            day = self.storage.add(_spend_key(provider, "day", day_end), cost, expires_at=day_end)
            month = self.storage.add(_spend_key(provider, "month", month_end), cost, expires_at=month_end)
        except StorageUnavailable as exc:
            self._failed(str(exc))
            return
        self.core.absorb_spend(provider, day_end, day, month_end, month)

    def record_usage(self, outcome: Any) -> None:
        """A request served by a model whose pool limits requests, tokens or spend per model:
        add it to the store's counters of the model's period and take every process's totals
        back (a limit they reach puts the model on standby here too)."""
        ref = f"{outcome.provider}/{outcome.model}"
        if (outcome.pool, ref) not in self._limited or self._backing_off():
            return
        now = self.clock()
        end = self.core.usage_period(outcome.pool, ref, now)
        expires = end if end is not None else now + _NEVER
        base = _usage_key(outcome.pool, ref, end)
        try:
            amounts = (1.0, float(outcome.prompt_tokens + outcome.completion_tokens), outcome.cost)
            totals = [self.storage.add(f"{base}/{name}", amount, expires_at=expires)
                      for name, amount in zip(_USAGE, amounts, strict=True)]
        except StorageUnavailable as exc:
            self._failed(str(exc))
            return
        requests, tokens, cost = totals
        self.emit(self.core.absorb_usage(outcome.pool, ref, end, requests, tokens, cost, now))

    def _pull_usage(self, now: float) -> None:
        stored = self.storage.load_many("usage/") if self._limited else {}
        for pool, ref in self._limited:
            end = self.core.usage_period(pool, ref, now)
            base = _usage_key(pool, ref, end)
            requests, tokens, cost = (_number(stored.get(f"{base}/{name}"), f"{base}/{name}") for name in _USAGE)
            self.emit(self.core.absorb_usage(pool, ref, end, requests, tokens, cost, now))

    def _pull_spend(self, now: float) -> None:
        stored = self.storage.load_many("spend/") if self._budgeted else {}
        for provider in self._budgeted:
            day_end, month_end = self.core.spend_periods(provider, now)
            day, month = _spend_key(provider, "day", day_end), _spend_key(provider, "month", month_end)
            self.core.absorb_spend(provider, day_end, _number(stored.get(day), day), month_end,
                                   _number(stored.get(month), month))

    def _read(self) -> dict[str, Fact]:
        out: dict[str, Fact] = {}
        for name, raw in self.storage.load_many(PREFIX).items():
            try:
                out[name[len(PREFIX):]] = Fact.from_dict(self.serializer.loads(raw, name))
            except (ValueError, TypeError) as exc:
                _log.warning("modelmesh: skipping stored health record %r, which is not a fact (%s)", name, exc)
        return out

    def _backing_off(self) -> bool:
        """Storage failed lately: automatic uses of it wait until the backoff ends."""
        return self._failing and time.monotonic() < self._retry_at

    def _failed(self, why: str) -> bool:
        if not self._failing:
            self._failing = True
            _log.warning("modelmesh: shared storage unavailable (%s); going on with this process's own health", why)
        self._pushed.clear()  # whatever the store lost meanwhile, ours go in again once it is back
        self._seen = _UNSEEN
        self._backoff = min(30.0, max(1.0, self._backoff * 2))
        self._retry_at = time.monotonic() + self._backoff
        return False


_HEARTBEAT_FIELDS = {"host": str, "pid": int, "started": float, "last_sync": (float, type(None)), "facts": int,
                     "standby": list, "last_push": (float, type(None)), "written": int, "expires": float}


def _heartbeat_record(data: Any) -> dict[str, Any]:
    """A stored heartbeat, checked field by field; ValueError for anything else."""
    if not isinstance(data, dict) or set(data) != set(_HEARTBEAT_FIELDS):
        raise ValueError("not an object with the fields of a heartbeat")
    for name, kind in _HEARTBEAT_FIELDS.items():
        value = data[name]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = data[name] = float(value)
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise ValueError(f"its field {name!r} is a {type(value).__name__}")
    if not all(isinstance(k, str) for k in data["standby"]):
        raise ValueError("its field 'standby' holds something other than names")
    return data


def _rate_record(data: Any) -> tuple[float, dict[tuple[str, str], float]]:
    """(when, {(pool, model): requests in the minute before}) from a stored rate; ValueError else."""
    if not isinstance(data, dict) or set(data) != {"at", "counts"} or not isinstance(data["counts"], list):
        raise ValueError("not an object with the fields of a request rate")
    at = data["at"]
    if isinstance(at, bool) or not isinstance(at, (int, float)) or not math.isfinite(at):
        raise ValueError("its field 'at' is not a time")
    out: dict[tuple[str, str], float] = {}
    for item in data["counts"]:
        if not (isinstance(item, list) and len(item) == 3 and isinstance(item[0], str) and isinstance(item[1], str)
                and isinstance(item[2], int) and not isinstance(item[2], bool) and item[2] >= 0):
            raise ValueError("its counts are not [pool, model, count] triples")
        out[(item[0], item[1])] = float(item[2])
    return float(at), out


def _spend_key(provider: str, period: str, end: float) -> str:
    return f"spend/{provider}/{period}/{int(end)}"


_USAGE = ("requests", "tokens", "cost")  # the counters a model's pool limits read
_NEVER = 400 * 86400.0  # counters of limits that never start afresh still expire, a year after their last use


def _usage_key(pool: str, ref: str, end: float | None) -> str:
    return f"usage/{pool}/{ref}/{'all' if end is None else int(end)}"


def _number(raw: bytes | None, key: str) -> float:
    """A stored counter; 0 when absent, and when it is not a number (skipped with a warning)."""
    if raw is None:
        return 0.0
    try:
        return float(raw)
    except ValueError:
        _log.warning("modelmesh: skipping stored counter %r, which is not a number", key)
        return 0.0
