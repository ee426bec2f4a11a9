"""The drive loop, written once: what a shell does with a `Call`, as generators of I/O requests.

Theory of operation. A shell (sync.py over urllib3, asyncio.py over httpx, or a user's own)
does not decide anything; it performs I/O. Everything else a request needs between the
core and the wire lives here: asking the call for its next action and feeding it back,
handing the call's events to the listeners, reading a body within its size and time caps,
the stream's total deadline, first-chunk and idle timeouts, the error body of a refused
stream, the probe verdict, the shared-storage hooks (the first-request sync, the spend and
`immediate` sync after a request, the probe lease) and the translation of a foreign error
into InternalError. Each of these is a generator (`begin`, `execute`, `stream`, `probe`)
that yields one *I/O request* at a time and is sent back what happened:

    Open(request, connect_timeout, read_timeout, idle_timeout)
                       send the request; the call's response is now this one. Send back
                       (status, headers), or the TransportFailed that stopped it
    ReadSome()         the next bytes of that response, decompressed (b"" at its end),
                       or a TransportFailed (a broken connection's message names only
                       what broke, e.g. the exception's type: the driver phrases it)
    IdleTimeout(s)     bound each later read of the open stream by `s` seconds; send back
                       True, or False when the shell cannot (the gap is then measured here)
    Release(complete)  let go of the response: its connection may be reused if `complete`
    Sleep(seconds)     wait
    Blocking(fn, args) call `fn(*args)` (shared storage I/O; a connector that does its own
                       I/O, the CDK's BaseProvider, for an attempt whose request is a
                       ConnectorCall) and send back its result; a shell with an event
                       loop runs it in a worker thread
    Deliver            (streams) a chunk for the caller; send back None when it asks for more

A shell runs a generator to its end (`StopIteration.value` is the result), throwing into it
any exception of its own code (`gen.throw`: the driver translates it and cancels the call)
and closing it when its caller walks away (`gen.close()`: the call is fed `Cancelled`,
lock-free, so a garbage-collected stream may do it too). Whatever response is open when a
generator ends early is the shell's to close; that is the only cleanup a shell does.

Why generators rather than one shell generated from the other (httpcore's unasync): the
decisions then exist in one source that every shell runs, not in a second copy kept equal
by a build step and a CI check; a fourth shell (trio, a replay shell, a user's embedding)
is its own perform-an-op code and nothing else, and the sync path pays a generator
`send` per I/O step (a fraction of a microsecond against ~400 us per request).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator
from typing import Any

from .._core import _errors as E
from .._core._call import Call
from .._core._mesh import Listing, MeshCore, Probe, Query
from .._core._protocol import (
    Attempt,
    Cancelled,
    DataReceived,
    Deliver,
    Failed,
    Read,
    ResponseReceived,
    StreamEnded,
    StreamOpened,
    Succeeded,
    TransportFailed,
    Wait,
)
from .._core._types import ConnectorCall, ErrorKind, WireRequest

__all__ = ["Driver", "Open", "ReadSome", "IdleTimeout", "Release", "Sleep", "Blocking", "READ_SOME", "ERROR_BODY_CAP"]

_log = logging.getLogger("modelmesh")
ERROR_BODY_CAP = 1024 * 1024  # an error answer says what it has to say in far less


# -- the I/O requests a shell performs -------------------------------------------------------
class Open:
    __slots__ = ("request", "connect_timeout", "read_timeout", "idle_timeout")

    def __init__(self, request: WireRequest, connect_timeout: float, read_timeout: float,
                 idle_timeout: float | None = None) -> None:
        self.request = request
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout  # the response head, and each read until IdleTimeout
        self.idle_timeout = idle_timeout  # a stream's gaps after its first chunk (None: not a stream)


class ReadSome:
    __slots__ = ()


READ_SOME = ReadSome()


class IdleTimeout:
    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


class Release:
    __slots__ = ("complete",)

    def __init__(self, complete: bool) -> None:
        self.complete = complete


class Sleep:
    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


class Blocking:
    __slots__ = ("fn", "args")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...] = ()) -> None:
        self.fn = fn
        self.args = args


Op = Open | ReadSome | IdleTimeout | Release | Sleep | Blocking
Drive = Generator[Any, Any, Any]  # yields an Op (or a Deliver), is sent its outcome


class Driver:
    """The shared part of every shell: one per client, safe to use from many threads or tasks
    (its own state is the shared-storage schedule, written by whoever gets there)."""

    def __init__(self, core: MeshCore, *, clock: Callable[[], float], emit: Callable[[Any], None] | None,
                 shared: Any = None, sync_policy: str = "in-memory", sync_interval: float = 1.0,
                 secrets: Any = None, discovery: Any = None) -> None:
        self.core = core
        # a BaseDiscovery (discovery.health.connector) says how checks are sent and judged; None: built in
        self.discovery = discovery
        self._own_probe = False  # whether it gives verdicts itself (overrides `probe`)
        if discovery is not None:
            from ..connectors.discovery import BaseDiscovery

            self._own_probe = type(discovery).probe is not BaseDiscovery.probe
        self.secrets = secrets  # a SecretRefresher: keys re-read from the store every cache_ttl; None: none
        self.clock = clock
        self.on_event = emit
        # called once per call that ends here, after all its events: with its Succeeded or Failed,
        # or, for a call its caller walked away from, a Failed saying so (the observability
        # request log and the OpenTelemetry spans read the payloads there)
        self.on_finished: Callable[[Call, Any], None] | None = None
        self.shared = shared  # SharedHealth, or None: health stays in this process
        self.sync_policy = sync_policy if shared is not None else "in-memory"
        self._sync_every = float(sync_interval)
        self._next_sync = 0.0  # time.monotonic() of the next periodic sync
        self._synced_once = False

    # -- steps --------------------------------------------------------------------------------
    def _step(self, call: Call) -> Any:
        action = call.next_action(self.clock())
        if call.events:
            self._emit(call.drain_events())
        if self.on_finished is not None and (type(action) is Succeeded or type(action) is Failed):
            self.on_finished(call, action)
        return action

    def _feed(self, call: Call, event: Any) -> None:
        call.feed(event, self.clock())
        if call.events:
            self._emit(call.drain_events())

    def _emit(self, events: list[Any]) -> None:
        if self.secrets is not None and self.secrets.reload_on_rotation:
            for ev in events:
                self.secrets.saw(ev)
        if self.on_event is not None:
            for ev in events:
                self.on_event(ev)

    def cancel(self, call: Call) -> None:
        try:
            self._feed(call, Cancelled())
        except Exception:  # a call already broken by an unexpected error: that error is the one to raise
            _log.exception("modelmesh: cancelling request %s failed", call.request_id)
        if self.on_finished is not None:
            self.on_finished(call, Failed(error=E.ModelMeshError("request cancelled by the caller")))

    def internal(self, exc: BaseException) -> E.InternalError:
        """The ModelMeshError a foreign exception becomes at the boundary (its text redacted);
        raise it `from exc` so the original stays the cause."""
        text = E.redact(str(exc), self.core.secret_values)
        return E.InternalError(f"unexpected {type(exc).__name__} inside modelmesh: {text}")

    # -- a request ----------------------------------------------------------------------------
    def begin(self, op: str, body: dict[str, Any], *, model: str, stream: bool, options: Any) -> Drive:
        """The Call for a request; the first request (every one under `immediate`) first
        learns what the other processes know."""
        if self.sync_policy != "in-memory" and (self.sync_policy == "immediate" or not self._synced_once):
            self._synced_once = True
            yield Blocking(self.sync, (False, False))
        if self.secrets is not None and self.secrets.due(self.clock()):  # at most once per cache_ttl
            self._emit((yield Blocking(self.secrets.refresh, ())))
        try:
            return self.core.start(op, body, model=model, stream=stream, options=options, now=self.clock())
        except E.ModelMeshError:
            raise
        except Exception as exc:
            raise self.internal(exc) from exc

    def execute(self, call: Call) -> Drive:
        """A non-streaming call to its end: returns the Succeeded, raises the call's error."""
        finished = False
        try:
            while True:
                action = self._step(call)
                kind = type(action)
                if kind is Attempt:
                    self._feed(call, (yield from self._send(action)))
                elif kind is Wait:
                    yield Sleep(action.seconds)
                elif kind is Succeeded or kind is Failed:
                    finished = True
                    return (yield from self._end(action))
                else:  # Read/Deliver cannot happen without a stream
                    raise RuntimeError(f"unexpected action {action!r} for a non-streaming call")
        except E.ModelMeshError:
            raise
        except Exception as exc:  # nothing foreign reaches the caller (a custom strategy's bug, ours)
            raise self.internal(exc) from exc
        finally:
            if not finished:
                self.cancel(call)

    def _end(self, action: Succeeded | Failed) -> Drive:
        """A call's end, streamed or not: what it cost and taught goes to the shared storage,
        then its success is returned or its error raised."""
        if self.shared is not None:
            yield Blocking(self.finished, (action,))
        if type(action) is Failed:
            raise action.error
        return action

    def _send(self, a: Attempt) -> Drive:
        """One attempt, its body read in pieces: no more than `a.max_bytes` (decompressed), and
        all of it within `a.total_timeout` (a body trickling in a byte a second ends there)."""
        if isinstance(a.request, ConnectorCall):  # a connector that does its own I/O
            return (yield Blocking(a.request.connector._mesh_complete, (a.request, a.read_timeout, a.connect_timeout)))
        started = self.clock()
        opened = yield Open(a.request, a.connect_timeout, a.read_timeout)
        if type(opened) is TransportFailed:
            return opened
        body = yield from self._body(a.max_bytes, started, a.total_timeout)
        failed = type(body) is TransportFailed
        yield Release(not failed)
        if failed:
            return body
        return ResponseReceived(status=opened[0], headers=opened[1], body=body)

    def _body(self, limit: int, started: float, total: float) -> Drive:
        """The open response's body, or the TransportFailed that stopped reading it: more than
        `limit` bytes once decompressed (a gzip bomb counts at its decompressed size), or
        past `total` seconds. Each read returns what has arrived, so a trickle is checked."""
        pieces: list[bytes] = []
        size = 0
        while True:
            piece = yield READ_SOME
            if type(piece) is TransportFailed:
                if piece.kind is ErrorKind.CONNECTION:
                    return TransportFailed(kind=ErrorKind.CONNECTION, message=f"connection failed ({piece.message})")
                return piece
            if not piece:
                return b"".join(pieces)
            size += len(piece)
            if size > limit:
                return TransportFailed(kind=ErrorKind.MALFORMED, message=f"response larger than {limit} bytes")
            if self.clock() - started > total:
                return TransportFailed(kind=ErrorKind.TIMEOUT, message=f"response not complete within {total:g}s")
            pieces.append(piece)

    # -- a stream -----------------------------------------------------------------------------
    def stream(self, call: Call) -> Drive:
        """A streaming call: yields each Deliver for the caller between its I/O requests;
        returns the Succeeded, raises the call's error."""
        done = False
        s: _Open | None = None
        try:
            while True:
                action = self._step(call)
                kind = type(action)
                if kind is Deliver:
                    yield action
                elif kind is Read:
                    assert s is not None, "the call asked to read before a stream was opened"
                    self._feed(call, (yield from self._read(s)))
                elif kind is Attempt:
                    if s is not None:
                        yield from self._let_go(s)
                        s = None
                    s, event = yield from self._open(action)
                    self._feed(call, event)
                elif kind is Wait:
                    yield Sleep(action.seconds)
                else:
                    done = True
                    if s is not None:
                        yield from self._let_go(s)
                        s = None
                    return (yield from self._end(action))
        except E.ModelMeshError:
            raise
        except Exception as exc:  # nothing foreign reaches the caller (a custom strategy's bug, ours)
            raise self.internal(exc) from exc
        finally:
            if not done:
                if s is not None and s.items is not None:  # the shell closes only what it opened
                    _close_items(s)
                self.cancel(call)

    def _let_go(self, s: _Open) -> Drive:
        if s.items is not None:
            yield Blocking(_close_items, (s,))
        else:
            yield Release(s.complete)

    def _open(self, a: Attempt) -> Drive:
        if isinstance(a.request, ConnectorCall):  # a connector that does its own I/O: its stream() is the body
            items, event = yield Blocking(a.request.connector._mesh_open,
                                          (a.request, a.first_chunk_timeout, a.connect_timeout))
            if items is None:
                return None, event
            s = _Open(a, self.clock())
            s.items, s.connector = items, a.request.connector
            return s, event
        opened = yield Open(a.request, a.connect_timeout, a.first_chunk_timeout, a.idle_timeout)
        if type(opened) is TransportFailed:
            return None, opened
        status, headers = opened
        if status >= 300:  # an error answer: its body says why, read within the read timeout
            body = yield from self._body(min(a.max_bytes, ERROR_BODY_CAP), self.clock(), a.read_timeout)
            failed = type(body) is TransportFailed
            yield Release(not failed)
            return None, ResponseReceived(status=status, headers=headers, body=b"" if failed else body)
        return _Open(a, self.clock()), StreamOpened(headers=headers)

    def _read(self, s: _Open) -> Drive:
        if self.clock() - s.started > s.total:
            return TransportFailed(kind=ErrorKind.TIMEOUT, message=f"stream exceeded its total timeout of {s.total:g}s")
        if s.items is not None:  # the connector's own stream: its next item, as it classified any failure
            item = yield Blocking(s.connector._mesh_next, (s.items,))
            s.complete = type(item) is StreamEnded
            return item
        data = yield READ_SOME
        if type(data) is TransportFailed:
            if data.kind is ErrorKind.CONNECTION:  # the body ended early, or the connection broke
                return TransportFailed(kind=ErrorKind.CONNECTION, message=f"stream cut by the upstream ({data.message})")
            return data
        if not data:
            s.complete = True
            return StreamEnded()
        if s.first:
            # the response and its first chunk were bounded by first_chunk_timeout (the read
            # timeout the stream was opened with); every later read waits up to idle_timeout
            s.first = False
            s.gap_by_shell = yield IdleTimeout(s.idle)
        elif not s.gap_by_shell and time.monotonic() - s.last_data > s.idle:
            return TransportFailed(kind=ErrorKind.TIMEOUT, message=f"stream idle for more than {s.idle:g}s")
        s.last_data = time.monotonic()
        s.bytes += len(data)
        if s.bytes > s.max_bytes:
            return TransportFailed(kind=ErrorKind.MALFORMED, message=f"stream larger than {s.max_bytes} bytes")
        return DataReceived(data=data)

    # -- recovery probes ----------------------------------------------------------------------
    def due_probes(self) -> list[Probe]:
        return self.core.due_probes(self.clock())

    def probe(self, probe: Probe) -> Drive:
        """Send one probe and record its verdict; with shared storage, only under the store's
        lease (another process probing it now: its verdict arrives with the shared facts)."""
        shared = self.shared
        lease = None
        if shared is not None:
            lease = yield Blocking(shared.probe_lease, (probe,))
            if lease is False:
                return
        try:
            ok, latency = yield from self._probe(probe)
            self._emit(self.core.probe_result(probe, ok=ok, now=self.clock(), latency=latency))
        except Exception:
            _log.exception("modelmesh: probe %s failed unexpectedly", probe.key)
        if shared is not None and lease is not None:
            yield Blocking(shared.end_probe_lease, (lease,))

    def _probe(self, probe: Probe) -> Drive:
        start = self.clock()
        found = self.discovery
        if found is not None and self._own_probe:
            verdict = yield Blocking(_own_verdict, (found, probe))
            if verdict is not None:
                return verdict, self.clock() - start
        if isinstance(probe.request, ConnectorCall):  # a connector that does its own I/O checks itself
            ok = yield Blocking(_own_check, (probe,))
            return ok, self.clock() - start
        request = probe.request if found is None else found.request(probe)
        opened = yield Open(request, probe.timeout, probe.timeout)
        if type(opened) is TransportFailed:  # a probe that cannot be sent failed, whatever the cause
            return False, None
        body = yield from self._body(ERROR_BODY_CAP, start, probe.timeout)
        failed = type(body) is TransportFailed
        yield Release(not failed)
        if failed:
            return False, self.clock() - start
        ok = 200 <= opened[0] < 300 if found is None else bool(found.judge(probe, opened[0], opened[1], body))
        return ok, self.clock() - start

    # -- registry sync ------------------------------------------------------------------------
    def due_fetches(self) -> list[Drive]:
        """What discovery fetches now, each a drive to run to its end: the model listings the
        registry sync wants, then the quota and price queries due (see `_core/_quota.py`)."""
        now = self.clock()
        drives = [self.list_models(listing) for listing in self.core.due_listings(now)]
        return drives + [self.ask(query) for query in self.core.due_queries(now)]

    def list_models(self, listing: Listing) -> Drive:
        """Fetch one provider's model listing and hand its ids to the core (None when it failed:
        nothing changes). New ids get what the shipped catalogue knows of their prices."""
        ids = None
        if isinstance(listing.request, ConnectorCall):  # a connector that does its own I/O lists itself
            ids = yield Blocking(_own_listing, (listing,))
        else:
            got = yield from self._fetch(listing.request, listing.timeout)
            if got is not None:
                ids = self.core.listing_ids(listing, *got)
        try:
            known = _catalogued(listing, ids, self.core.models)
            self._emit(self.core.listed(listing, ids, now=self.clock(), known=known))
        except Exception:
            _log.exception("modelmesh: registry sync of %s failed unexpectedly", listing.provider)

    def ask(self, query: Query) -> Drive:
        """Send one quota or price query and hand its answer to the core (none, when it could
        not be sent or read: nothing changes)."""
        got = yield from self._fetch(query.request, query.timeout)
        status, headers, body = got if got is not None else (None, {}, b"")
        try:
            self._emit(self.core.queried(query, status, headers, body, now=self.clock()))
        except Exception:
            _log.exception("modelmesh: the %s query of %s failed unexpectedly", query.kind, query.provider)

    def _fetch(self, request: WireRequest, timeout: float) -> Drive:
        """(status, headers, body) of a small GET-like request, all within `timeout`; None when
        it could not be sent or read."""
        start = self.clock()
        opened = yield Open(request, timeout, timeout)
        if type(opened) is TransportFailed:
            return None
        body = yield from self._body(LISTING_CAP, start, timeout)
        failed = type(body) is TransportFailed
        yield Release(not failed)
        return None if failed else (opened[0], opened[1], body)

    # -- shared storage (blocking: a shell with an event loop calls these in a thread) ---------
    def sync(self, force: bool = True, patient: bool = True) -> bool:
        """Exchange health with the other processes now; False without shared storage, or when
        it cannot be reached (the process then goes on with its own). Never raises. The
        automatic syncs pass `force=False`: they skip storage while backing off from a failure."""
        shared = self.shared
        if shared is None:
            return False
        try:
            ok = bool(shared.sync(force=force, patient=patient))
        except Exception:  # a bug here must not fail the request that triggered the sync
            _log.exception("modelmesh: sharing health through storage failed")
            return False
        self._next_sync = time.monotonic() + self._sync_every
        return ok

    def sync_due(self) -> bool:
        """Whether the probe round should also sync now (`periodic` and `immediate`)."""
        return self.sync_policy in ("periodic", "immediate") and time.monotonic() >= self._next_sync

    def finished(self, outcome: Succeeded | Failed) -> None:
        """A request ended (in its caller's thread, never from a finaliser): what it cost goes
        to the shared budget counters, and under `immediate` what it taught this process goes
        to the others now."""
        shared = self.shared
        if shared is None:
            return
        if isinstance(outcome, Succeeded):
            try:
                shared.record_spend(outcome.provider, outcome.cost)
                shared.record_usage(outcome)
            except Exception:  # a bug here must not fail the request it counts
                _log.exception("modelmesh: sharing spend through storage failed")
        if self.sync_policy == "immediate" and shared.changed():  # nothing new: the next request reads anyway
            self.sync(False, False)

    def close_shared(self) -> None:
        """At close: what this process learnt last outlives it; then its heartbeat goes and the
        store is closed."""
        if self.shared is not None:
            self.sync()
            self.shared.close()
            self.shared = None


LISTING_CAP = 16 * 1024 * 1024  # a provider's whole model list (aggregators list hundreds)


def _catalogued(listing: Listing, ids: list[str] | None, models: Any) -> dict[str, Any]:
    """What the shipped catalogue knows of the listed ids the mesh lacks (read on first need)."""
    if not ids:
        return {}
    from .._catalogue import lookup

    new = [i for i in ids if f"{listing.provider}/{i}" not in models]
    return {i: entry for i in new if (entry := lookup(listing.connector, i)) is not None}


class _Open:
    """An open stream's bounds and counters (one attempt's)."""

    __slots__ = ("started", "total", "idle", "max_bytes", "bytes", "first", "gap_by_shell", "last_data", "complete",
                 "items", "connector")

    def __init__(self, a: Attempt, now: float) -> None:
        self.started = now
        self.total = a.total_timeout
        self.idle = a.idle_timeout
        self.max_bytes = a.max_bytes
        self.bytes = 0
        self.first = True
        self.gap_by_shell = False
        self.last_data = 0.0
        self.complete = False  # read to its end: its connection can be reused
        self.items: Any = None  # a connector's own stream (its iterator), in place of a response
        self.connector: Any = None


def _close_items(s: _Open) -> None:
    """Close a connector's own stream (its generator's cleanup runs); what that raises is
    logged, never the caller's problem."""
    items, s.items = s.items, None
    if items is not None:
        try:
            s.connector._mesh_close(items)
        except Exception:
            _log.exception("modelmesh: closing %s's stream failed", type(s.connector).__name__)



def _own_check(probe: Probe) -> bool:
    """A connector's own health check; an exception it raises fails the check."""
    call = probe.request
    assert isinstance(call, ConnectorCall)
    connector = call.connector
    try:
        return bool(connector._mesh_check(call, probe.timeout))
    except Exception as exc:
        _log.info("modelmesh: %s check of %s failed: %s", type(connector).__name__, probe.key, type(exc).__name__)
        return False


def _own_listing(listing: Listing) -> list[str] | None:
    """A connector's own model list; None when it lists none or failing (nothing changes)."""
    call = listing.request
    assert isinstance(call, ConnectorCall)
    connector = call.connector
    try:
        ids: list[str] | None = connector._mesh_list(call, listing.timeout)
        return ids
    except Exception:
        _log.exception("modelmesh: %s.list_models failed", type(connector).__name__)
        return None


def _own_verdict(discovery: Any, probe: Probe) -> bool | None:
    """A discovery class's own verdict (its `probe`); an exception it raises fails the check."""
    try:
        verdict = discovery.probe(probe)
    except Exception:
        _log.exception("modelmesh: %s.probe failed checking %s; counted as a failed check",
                       type(discovery).__name__, probe.key)
        return False
    return None if verdict is None else bool(verdict)
