"""The synchronous shell: drives the core over urllib3 (or a user's `requests.Session`).

It decides nothing. For each action of a `Call` it performs the I/O (an HTTP request, a
read from an open stream, a sleep) and feeds back what happened. The core is shared by
every thread of the process; its lock (`core.lock`, a threading.Lock given to the core
when it was built) is taken by the core itself around shared health only, so parsing a
large response or a slow upstream never holds up another thread. A call's events are
its own: after each step they are handed to `on_event`, with no lock held.
Exceptions of requests/urllib3 are translated here, at the boundary, into the core's
`TransportFailed` input; nothing foreign escapes to the caller.

Recovery probes never run in a caller's request. A daemon thread, started on the first
request (`start`) and stopped and joined by `close`, wakes every `probe_check_interval`
real seconds, asks the core which probes are due by the shell's clock and sends them, up
to `_PROBE_WORKERS` at a time, each bounded by its own timeout. It starts lazily rather
than at construction so that a client built before a pre-forking server forks (gunicorn
`--preload`) gets its thread in each worker: threads do not survive a fork, and the first
request in the child finds the thread dead and starts another. Probe workers are daemon
threads too, and joined by the round that started them, so a client that is never closed
holds up no interpreter exit, and one that is closed leaves no thread behind.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Generator, Mapping

import urllib3

from .._core import _errors as E
from .._core._call import Call
from .._core._mesh import MeshCore, Probe
from .._core._protocol import (
    Attempt, Cancelled, DataReceived, Deliver, Failed, Read, ResponseReceived, StreamEnded, StreamOpened, Succeeded,
    TransportFailed, Wait,
)
from .._core._types import ErrorKind
from ._http import Http, ProxyUnavailable

__all__ = ["SyncTransport", "StreamHandle"]

_PROBE_WORKERS = 4  # probes of different targets sent at once by one round
_log = logging.getLogger("modelmesh")


def _translate(exc: Exception) -> TransportFailed:
    """urllib3's exceptions (and requests', when a user's Session sends) -> the core's vocabulary."""
    u = urllib3.exceptions
    if isinstance(exc, u.NewConnectionError):  # before ConnectTimeoutError, which it subclasses
        if isinstance(exc, u.NameResolutionError):
            return TransportFailed(kind=ErrorKind.CONNECTION, message="host name not found", connect=True)
        return TransportFailed(kind=ErrorKind.CONNECTION, message="connection refused", connect=True)
    if isinstance(exc, u.ConnectTimeoutError):
        return TransportFailed(kind=ErrorKind.TIMEOUT, message="connect timeout", connect=True)
    if isinstance(exc, (u.ReadTimeoutError, TimeoutError)):
        return TransportFailed(kind=ErrorKind.TIMEOUT, message="read timeout")
    if isinstance(exc, u.ProxyError):
        return TransportFailed(kind=ErrorKind.CONNECTION, message="the proxy failed", connect=True)
    if isinstance(exc, u.SSLError):
        return TransportFailed(kind=ErrorKind.CONNECTION, message="TLS handshake failed", connect=True)
    if isinstance(exc, u.DecodeError):
        return TransportFailed(kind=ErrorKind.MALFORMED, message="response body could not be decompressed")
    if isinstance(exc, u.LocationValueError):
        return _unsendable(exc)
    if isinstance(exc, (u.HTTPError, OSError)):
        return TransportFailed(kind=ErrorKind.CONNECTION, message=f"connection failed ({type(exc).__name__})")
    return _translate_requests(exc)


def _translate_requests(exc: Exception) -> TransportFailed:
    import requests  # only a user's Session raises these; requests is loaded already then

    if isinstance(exc, requests.ConnectTimeout):
        return TransportFailed(kind=ErrorKind.TIMEOUT, message="connect timeout", connect=True)
    if isinstance(exc, (requests.ReadTimeout, requests.Timeout)):
        return TransportFailed(kind=ErrorKind.TIMEOUT, message="read timeout")
    if isinstance(exc, (requests.exceptions.InvalidHeader, requests.exceptions.InvalidURL,
                        requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema)):
        return _unsendable(exc)
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return TransportFailed(kind=ErrorKind.CONNECTION, message="stream cut by the upstream (incomplete chunked body)")
    if isinstance(exc, requests.ConnectionError):
        text = str(exc)
        connect = any(s in text for s in ("NewConnectionError", "Connection refused", "Failed to establish", "NameResolution"))
        if "Read timed out" in text:
            return TransportFailed(kind=ErrorKind.TIMEOUT, message="read timeout")
        return TransportFailed(kind=ErrorKind.CONNECTION, message="connection refused" if connect else "connection failed", connect=connect)
    return TransportFailed(kind=ErrorKind.CONNECTION, message=type(exc).__name__)


_PIECE = 64 * 1024
_ERROR_BODY_CAP = 1024 * 1024  # an error answer says what it has to say in far less


def _read_capped(r: Any, limit: int, late: Callable[[], bool], total: float) -> bytes | TransportFailed:
    """The body of `r`, or the TransportFailed that stopped reading it: more than `limit`
    bytes once decompressed (a gzip bomb counts at its decompressed size), or `late()`.
    `read1` returns whatever has arrived, so a body trickling in is checked as it comes."""
    pieces: list[bytes] = []
    size = 0
    try:
        while True:
            piece = r.read1(_PIECE, decode_content=True)
            if not piece:
                break
            size += len(piece)
            if size > limit:
                return TransportFailed(kind=ErrorKind.MALFORMED, message=f"response larger than {limit} bytes")
            if late():
                return TransportFailed(kind=ErrorKind.TIMEOUT, message=f"response not complete within {total:g}s")
            pieces.append(piece)
    except Exception as exc:  # noqa: BLE001 - every way a read can break is translated, none escapes
        return _translate(exc)
    return b"".join(pieces)


def _close(r: Any, complete: bool) -> None:
    """Hand the connection back for reuse when its answer was read to the end; otherwise
    close it (what is left unread would be taken for the next answer)."""
    if not complete:
        r.close()
    r.release_conn()


def _unsendable(exc: Exception) -> TransportFailed:
    # the exception's text may quote the header (the key): name only its type
    return TransportFailed(kind=ErrorKind.MISCONFIGURED,
                           message=f"the request could not be sent as configured ({type(exc).__name__}); "
                                   "check the provider's key, headers and base_url")


class SyncTransport:
    def __init__(
        self,
        core: MeshCore,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        session: Any = None,
        environ: Mapping[str, str] | None = None,
        pool_maxsize: int = 64,
        on_event: Callable[[Any], None] | None = None,
        probe_check_interval: float = 1.0,
        shared: Any = None,
        sync_policy: str = "in-memory",
        sync_interval: float = 1.0,
    ) -> None:
        self.core = core
        self.clock = clock
        self.sleep = sleep
        self.on_event = on_event
        self.http = Http(session=session, environ=environ, pool_maxsize=pool_maxsize)
        if isinstance(probe_check_interval, bool) or not isinstance(probe_check_interval, (int, float)) \
                or not 0 < probe_check_interval < float("inf"):
            raise ValueError(f"probe_check_interval must be a positive number of seconds, got {probe_check_interval!r}")
        self._probe_every = float(probe_check_interval)
        self._prober: threading.Thread | None = None
        self._prober_lock = threading.Lock()
        self._stop = threading.Event()
        self._closed = False
        # health shared with other processes through storage (see _shared.py): when to sync
        self.shared = shared
        self._sync_policy = sync_policy if shared is not None else "in-memory"
        self._sync_every = float(sync_interval)
        self._next_sync = 0.0  # time.monotonic() of the next periodic sync
        self._synced_once = False

    def close(self) -> None:
        """Stop the probe thread, wait for the probes in flight (each bounded by its own
        timeout) and close the connection pool; idempotent."""
        with self._prober_lock:
            self._closed = True
            prober, self._prober = self._prober, None
        self._stop.set()
        if prober is not None and prober is not threading.current_thread():
            prober.join()
        self.http.close()
        if self.shared is not None:
            self.sync()  # what this process learnt last outlives it
            self.shared.close()  # its heartbeat goes, then the store is closed
            self.shared = None

    def sync(self, *, force: bool = True, patient: bool = True) -> bool:
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

    # -- helpers ---------------------------------------------------------------------------
    def _step(self, call: Call) -> Any:
        action = call.next_action(self.clock())
        if call.events:
            self._emit(call.drain_events())
        return action

    def _feed(self, call: Call, event: Any) -> None:
        call.feed(event, self.clock())
        if call.events:
            self._emit(call.drain_events())

    def _emit(self, events: list) -> None:
        if self.on_event is not None:
            for ev in events:
                self.on_event(ev)

    def _cancel(self, call: Call) -> None:
        try:
            self._feed(call, Cancelled())
        except Exception:  # a call already broken by an unexpected error: that error is the one to raise
            _log.exception("modelmesh: cancelling request %s failed", call.request_id)

    def internal(self, exc: Exception) -> E.InternalError:
        """The ModelMeshError a foreign exception becomes at the boundary (its text redacted);
        raise it `from exc` so the original stays the cause."""
        text = E.redact(str(exc), self.core.secret_values)
        return E.InternalError(f"unexpected {type(exc).__name__} inside modelmesh: {text}")

    def start(self, op: str, body: dict, *, model: str, stream: bool, options: Any = None) -> Call:
        self._ensure_prober()
        if self._sync_policy != "in-memory" and (self._sync_policy == "immediate" or not self._synced_once):
            self._synced_once = True  # the first request starts from what the others know
            self.sync(force=False, patient=False)
        try:
            return self.core.start(op, body, model=model, stream=stream, options=options, now=self.clock())
        except E.ModelMeshError:
            raise
        except Exception as exc:
            raise self.internal(exc) from exc

    # -- non-streaming ----------------------------------------------------------------------
    def execute(self, call: Call) -> Succeeded:
        finished = False
        try:
            while True:
                action = self._step(call)
                if isinstance(action, Attempt):
                    self._feed(call, self._send(action))
                elif isinstance(action, Wait):
                    self.sleep(action.seconds)
                elif isinstance(action, (Succeeded, Failed)):
                    finished = True
                    self.finished(action)
                    if isinstance(action, Failed):
                        raise action.error
                    return action
                else:  # Read/Deliver cannot happen without a stream
                    raise RuntimeError(f"unexpected action {action!r} for a non-streaming call")
        except E.ModelMeshError:
            raise
        except Exception as exc:  # nothing foreign reaches the caller (a custom strategy's bug, ours)
            raise self.internal(exc) from exc
        finally:
            if not finished:
                self._cancel(call)

    def _send(self, a: Attempt) -> Any:
        """One request, its body read in pieces: no more than `a.max_bytes` (decompressed), and
        all of it within `a.total_timeout` (a body trickling in a byte a second ends there)."""
        started = self.clock()
        r, failed = self._request(a, read_timeout=a.read_timeout)
        if r is None:
            return failed
        body = _read_capped(r, a.max_bytes, lambda: self.clock() - started > a.total_timeout, a.total_timeout)
        _close(r, complete=not isinstance(body, TransportFailed))
        if isinstance(body, TransportFailed):
            return body
        return ResponseReceived(status=r.status, headers=r.headers, body=body)

    def _request(self, a: Attempt, *, read_timeout: float) -> tuple[Any, Any]:
        """Send `a.request`, never following a redirect (the credentials would follow it):
        (the response, its body unread, None) or (None, the TransportFailed)."""
        req = a.request
        try:
            r = self.http.send(req.method, req.url, req.headers, req.json,
                               connect_timeout=a.connect_timeout, read_timeout=read_timeout)
        except ProxyUnavailable as exc:
            return None, TransportFailed(kind=ErrorKind.MISCONFIGURED, message=str(exc))
        except (ValueError, UnicodeError) as exc:  # a header or URL http.client refuses to send
            return None, _unsendable(exc)
        except Exception as exc:  # noqa: BLE001 - urllib3's and requests' errors, translated
            return None, _translate(exc)
        return r, None

    # -- streaming --------------------------------------------------------------------------
    def stream(self, call: Call) -> StreamHandle:
        return StreamHandle(self, call)

    def _open(self, a: Attempt) -> tuple[Any, Any]:
        r, failed = self._request(a, read_timeout=a.first_chunk_timeout)
        if r is None:
            return None, failed
        if r.status >= 300:
            started = self.clock()
            body = _read_capped(r, min(a.max_bytes, _ERROR_BODY_CAP),
                                lambda: self.clock() - started > a.read_timeout, a.read_timeout)
            _close(r, complete=not isinstance(body, TransportFailed))
            return None, ResponseReceived(status=r.status, headers=r.headers,
                                          body=b"" if isinstance(body, TransportFailed) else body)
        return r, StreamOpened(headers=r.headers)

    # -- probes ------------------------------------------------------------------------------
    def _ensure_prober(self) -> None:
        prober = self._prober
        if prober is not None and prober.is_alive():
            return
        with self._prober_lock:
            if self._closed or (self._prober is not None and self._prober.is_alive()):
                return
            self._stop = threading.Event()  # fresh: one a forked child inherited may hold stale waiters
            self._prober = threading.Thread(target=self._probe_loop, args=(self._stop,),
                                            name="modelmesh-probes", daemon=True)
            self._prober.start()

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
        if self._sync_policy == "immediate" and shared.changed():  # nothing new: the next request reads anyway
            self.sync(force=False, patient=False)

    def _probe_loop(self, stop: threading.Event) -> None:
        while not stop.wait(self._probe_every):
            try:
                self.run_probes()
            except Exception:  # a bug here must not end recovery for the life of the client
                _log.exception("modelmesh: a round of recovery probes failed")
            if self._sync_policy in ("periodic", "immediate") and time.monotonic() >= self._next_sync:
                self.sync(force=False)

    def run_probes(self) -> int:
        """Send every probe recovery asks for now and record the outcomes; returns how many
        were sent. The probe thread calls this; so may a user or a test, from any thread."""
        probes = self.core.due_probes(self.clock())
        if len(probes) <= 1:
            for probe in probes:
                self._probe_and_record(probe)
            return len(probes)
        pending = iter(probes)
        take = threading.Lock()

        def worker() -> None:
            while True:
                with take:
                    probe = next(pending, None)
                if probe is None:
                    return
                self._probe_and_record(probe)

        workers = [threading.Thread(target=worker, name="modelmesh-probe", daemon=True)
                   for _ in range(min(_PROBE_WORKERS, len(probes)))]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        return len(probes)

    def _probe_and_record(self, probe: Probe) -> None:
        shared = self.shared
        lease = shared.probe_lease(probe) if shared is not None else None
        if lease is False:
            return  # another process is probing this now; its verdict arrives with the shared facts
        try:
            ok, latency = self._probe(probe)
            self._emit(self.core.probe_result(probe, ok=ok, now=self.clock(), latency=latency))
        except Exception:
            _log.exception("modelmesh: probe %s failed unexpectedly", probe.key)
        finally:
            if shared is not None and lease is not None:
                shared.end_probe_lease(lease)

    def _probe(self, probe: Probe) -> tuple[bool, float | None]:
        req = probe.request
        start = self.clock()
        try:
            r = self.http.send(req.method, req.url, req.headers, req.json,
                               connect_timeout=probe.timeout, read_timeout=probe.timeout)
            body = _read_capped(r, _ERROR_BODY_CAP, lambda: self.clock() - start > probe.timeout, probe.timeout)
            _close(r, complete=not isinstance(body, TransportFailed))
        except Exception:  # noqa: BLE001 - a probe that cannot be sent or answered failed, whatever the cause
            return False, None
        return 200 <= r.status < 300 and not isinstance(body, TransportFailed), self.clock() - start


class StreamHandle:
    """Iterates the chunks of a streaming call; `result` holds the Succeeded once it ends."""

    def __init__(self, transport: SyncTransport, call: Call) -> None:
        self._t = transport
        self.call = call
        self.result: Succeeded | None = None
        self._response: Any = None
        self._complete = False  # the open response was read to its end: its connection can be reused
        self._started = 0.0
        self._total = 0.0
        self._idle = 0.0
        self._max_bytes = 0
        self._bytes = 0
        self._first = True
        self._gap_by_socket = False
        self._last_data = 0.0
        self._done = False
        self._in_thread = False  # the generator is being closed by a caller, not by a finaliser
        self._gen = self._run()

    def __iter__(self) -> StreamHandle:
        return self

    def __next__(self) -> Deliver:
        return next(self._gen)

    def close(self) -> None:
        self._in_thread = True
        self._gen.close()

    def _drop(self, *, exiting: bool = False) -> None:
        """Let go of the open response. Handing its connection back to the pool takes the
        pool's lock, which a finaliser must never do (the garbage collector may run it in a
        thread that holds that very lock): a stream abandoned without `close()` only closes
        its socket, and the pool opens another connection when it needs one."""
        r, self._response = self._response, None
        if r is None:
            return
        if exiting and not self._in_thread:
            r.close()  # lock-free: closes the socket, touches no pool
        else:
            _close(r, complete=self._complete)

    def _run(self) -> Generator[Deliver, None, None]:
        t, call = self._t, self.call
        try:
            while True:
                action = t._step(call)
                if isinstance(action, Deliver):
                    yield action
                elif isinstance(action, Read):
                    t._feed(call, self._read())
                elif isinstance(action, Attempt):
                    self._drop()
                    self._response, event = t._open(action)
                    if self._response is not None:
                        self._complete = False
                        self._started = t.clock()
                        self._total = action.total_timeout
                        self._idle = action.idle_timeout
                        self._max_bytes, self._bytes = action.max_bytes, 0
                        self._first = True
                    t._feed(call, event)
                elif isinstance(action, Wait):
                    t.sleep(action.seconds)
                elif isinstance(action, Succeeded):
                    self.result = action
                    self._done = True
                    t.finished(action)
                    return
                else:
                    self._done = True
                    t.finished(action)
                    raise action.error
        except E.ModelMeshError:
            raise
        except Exception as exc:  # nothing foreign reaches the caller (a custom strategy's bug, ours)
            raise t.internal(exc) from exc
        except GeneratorExit:
            self._drop(exiting=True)
            raise
        finally:
            self._drop()
            if not self._done:
                t._cancel(call)

    def _read(self) -> Any:
        if self._t.clock() - self._started > self._total:
            return TransportFailed(kind=ErrorKind.TIMEOUT, message=f"stream exceeded its total timeout of {self._total:g}s")
        assert self._response is not None, "the call asked to read before a stream was opened"
        try:
            data = self._response.read1(_PIECE, decode_content=True)  # what has arrived, up to a piece
        except Exception as exc:  # noqa: BLE001 - every way a read can break is translated, none escapes
            failed = _translate(exc)
            if failed.kind is ErrorKind.CONNECTION:  # the body ended early, or the connection broke
                return TransportFailed(kind=ErrorKind.CONNECTION, message=f"stream cut by the upstream ({type(exc).__name__})")
            return failed
        if not data:
            self._complete = True
            return StreamEnded()
        if self._first:
            # the response and its first chunk were bounded by first_chunk_timeout (the read
            # timeout the stream was opened with); every later read waits up to idle_timeout
            self._first = False
            self._gap_by_socket = _set_read_timeout(self._response, self._idle)
        elif not self._gap_by_socket and time.monotonic() - self._last_data > self._idle:
            return TransportFailed(kind=ErrorKind.TIMEOUT, message=f"stream idle for more than {self._idle:g}s")
        self._last_data = time.monotonic()
        self._bytes += len(data)
        if self._bytes > self._max_bytes:
            return TransportFailed(kind=ErrorKind.MALFORMED, message=f"stream larger than {self._max_bytes} bytes")
        return DataReceived(data=data)


def _set_read_timeout(response: Any, seconds: float) -> bool:
    """Change the read timeout of an open streamed response; False if it cannot be done.

    urllib3 2.x with `preload_content=False` keeps the response's connection
    (`HTTPResponse.connection`), and that connection's socket is the one every later read
    blocks on; a socket's timeout applies to each `recv` from the moment it is set. A
    timed-out read surfaces as urllib3's ReadTimeoutError, which `_translate` maps to a
    TIMEOUT. When the socket is not reachable (a custom requests adapter's answer), the
    caller falls back to measuring the gap once the read returns.
    """
    sock = getattr(getattr(response, "connection", None), "sock", None)
    settimeout = getattr(sock, "settimeout", None)
    if settimeout is None:
        return False
    try:
        settimeout(seconds)
    except OSError:
        return False
    return True
