"""The synchronous shell: drives the core over urllib3 (or a user's `requests.Session`).

It decides nothing. The drive loop (`_drive.py`, shared with the asyncio shell) asks the
`Call` for its actions and yields the I/O they need; this shell performs each one, blocking
(an HTTP request, a read from an open response, a sleep), and sends back what happened.
Its own code is that I/O and nothing else: `_perform` and the response it holds. The core is shared by
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
from .._core._protocol import Deliver, Failed, Succeeded, TransportFailed
from .._core._types import ErrorKind
from ._drive import Driver, IdleTimeout, Open, ReadSome, Release, Sleep
from ._http import Http, ProxyUnavailable, body_of

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


class _Conn:
    """The response a drive has open (at most one at a time), and whether its socket bounds
    the gaps of a stream."""

    __slots__ = ("response",)

    def __init__(self) -> None:
        self.response: Any = None

    def drop(self, complete: bool, *, lock_free: bool = False) -> None:
        """Let go of the open response. Handing its connection back to the pool takes the
        pool's lock, which a finaliser must never do (the garbage collector may run it in a
        thread that holds that very lock): `lock_free` only closes its socket, and the pool
        opens another connection when it needs one."""
        r, self.response = self.response, None
        if r is None:
            return
        if lock_free:
            r.close()
        else:
            _close(r, complete)


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
        secrets: Any = None,
        discovery: Any = None,
    ) -> None:
        self.core = core
        self.clock = clock
        self.sleep = sleep
        self.on_event = on_event
        self.driver = Driver(core, clock=clock, emit=on_event, shared=shared, sync_policy=sync_policy,
                             sync_interval=sync_interval, secrets=secrets, discovery=discovery)
        self.http = Http(session=session, environ=environ, pool_maxsize=pool_maxsize)
        self._probe_every = probe_interval(probe_check_interval)
        self.round_hooks: list[Callable[[], Any]] = []  # more work of each background round (the client's)
        self._prober: threading.Thread | None = None
        self._prober_lock = threading.Lock()
        self._stop = threading.Event()
        self._closed = False
        core.started(clock())
        if core.starts_background:  # probe_on_start: checked now, in the background, not in the constructor
            self._ensure_prober(now=True)

    @property
    def shared(self) -> Any:
        """The SharedHealth health is exchanged through, or None (health stays in this process)."""
        return self.driver.shared

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
        self.driver.close_shared()

    def sync(self, *, force: bool = True, patient: bool = True) -> bool:
        """Exchange health with the other processes now; False without shared storage, or when
        it cannot be reached (the process then goes on with its own). Never raises. The
        automatic syncs pass `force=False`: they skip storage while backing off from a failure."""
        return self.driver.sync(force, patient)

    def finished(self, outcome: Succeeded | Failed) -> None:
        """A request ended: its cost and (under `immediate`) its lessons go to shared storage."""
        self.driver.finished(outcome)

    def internal(self, exc: Exception) -> E.InternalError:
        """The ModelMeshError a foreign exception becomes at the boundary (its text redacted);
        raise it `from exc` so the original stays the cause."""
        return self.driver.internal(exc)

    # -- the drive: perform what the shared loop asks ---------------------------------------
    def _advance(self, drive: Any, conn: _Conn, result: Any = None) -> Any:
        """Perform the drive's I/O requests until it yields a Deliver (returned) or ends
        (StopIteration, with its result). An error of this shell's own is thrown into the
        drive, which translates it and cancels the call."""
        op = drive.send(result)
        while True:
            kind = type(op)
            try:
                if kind is Deliver:
                    return op
                if kind is ReadSome:
                    result = self._read(conn)
                elif kind is Open:
                    conn.drop(False)
                    conn.response, result = self._open(op)
                elif kind is Release:
                    conn.drop(op.complete)
                    result = None
                elif kind is IdleTimeout:
                    result = _set_read_timeout(conn.response, op.seconds)
                elif kind is Sleep:
                    result = self.sleep(op.seconds)
                else:
                    result = op.fn(*op.args)
            except Exception as exc:  # noqa: BLE001 - handed to the drive, which translates it
                op = drive.throw(exc)
            else:
                op = drive.send(result)

    def _open(self, op: Open) -> tuple[Any, Any]:
        """Send `op.request`, never following a redirect (the credentials would follow it):
        (the response, its body unread; (status, headers)) or (None, the TransportFailed)."""
        req = op.request
        try:
            r = self.http.send(req.method, req.url, req.headers, body_of(req),
                               connect_timeout=op.connect_timeout, read_timeout=op.read_timeout)
        except ProxyUnavailable as exc:
            return None, TransportFailed(kind=ErrorKind.MISCONFIGURED, message=str(exc))
        except (ValueError, UnicodeError) as exc:  # a header or URL http.client refuses to send
            return None, _unsendable(exc)
        except Exception as exc:  # noqa: BLE001 - urllib3's and requests' errors, translated
            return None, _translate(exc)
        return r, (r.status, r.headers)

    @staticmethod
    def _read(conn: _Conn) -> Any:
        try:
            return conn.response.read1(_PIECE, decode_content=True)  # what has arrived, up to a piece
        except Exception as exc:  # noqa: BLE001 - every way a read can break is translated, none escapes
            failed = _translate(exc)
            if failed.kind is ErrorKind.CONNECTION:  # the body ended early, or the connection broke: what broke
                return TransportFailed(kind=ErrorKind.CONNECTION, message=type(exc).__name__)
            return failed

    def start(self, op: str, body: dict, *, model: str, stream: bool, options: Any = None) -> Call:
        self._ensure_prober()
        try:
            self._advance(self.driver.begin(op, body, model=model, stream=stream, options=options), _NO_CONN)
        except StopIteration as end:
            return end.value
        raise AssertionError("unreachable: starting a call delivers nothing")

    def execute(self, call: Call) -> Succeeded:
        conn = _Conn()
        drive = self.driver.execute(call)
        try:
            self._advance(drive, conn)
        except StopIteration as end:
            return end.value
        finally:
            conn.drop(False)
            drive.close()  # a call not at its end (a KeyboardInterrupt in a read) is cancelled
        raise AssertionError("unreachable: a non-streaming call delivers nothing")

    def stream(self, call: Call) -> StreamHandle:
        return StreamHandle(self, call)

    # -- probes ------------------------------------------------------------------------------
    def _ensure_prober(self, now: bool = False) -> None:
        prober = self._prober
        if prober is not None and prober.is_alive():
            return
        with self._prober_lock:
            if self._closed or (self._prober is not None and self._prober.is_alive()):
                return
            self._stop = threading.Event()  # fresh: one a forked child inherited may hold stale waiters
            self._prober = threading.Thread(target=self._probe_loop, args=(self._stop, now),
                                            name="modelmesh-probes", daemon=True)
            self._prober.start()

    def _probe_loop(self, stop: threading.Event, now: bool = False) -> None:
        if now:
            self.background_round()
        while not stop.wait(self._probe_every):
            self.background_round()

    def background_round(self) -> None:
        """One round of the background thread: due probes and health checks, due registry
        syncs, the periodic storage sync, the client's `round_hooks` (its fine-tuning jobs
        followed). Never raises."""
        try:
            self.run_probes()
        except Exception:  # a bug here must not end recovery for the life of the client
            _log.exception("modelmesh: a round of recovery probes failed")
        try:
            self.run_discovery()
        except Exception:
            _log.exception("modelmesh: a round of registry sync failed")
        if self.driver.sync_due():
            self.sync(force=False)
        for hook in self.round_hooks:
            try:
                hook()
            except Exception:
                _log.exception("modelmesh: a background check (%r) failed", hook)

    def run_probes(self) -> int:
        """Send every probe recovery asks for now and record the outcomes; returns how many
        were sent. The probe thread calls this; so may a user or a test, from any thread."""
        probes = self.driver.due_probes()
        if len(probes) <= 1:
            for probe in probes:
                self._probe(probe)
            return len(probes)
        pending = iter(probes)
        take = threading.Lock()

        def worker() -> None:
            while True:
                with take:
                    probe = next(pending, None)
                if probe is None:
                    return
                self._probe(probe)

        workers = [threading.Thread(target=worker, name="modelmesh-probe", daemon=True)
                   for _ in range(min(_PROBE_WORKERS, len(probes)))]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        return len(probes)

    def run_discovery(self) -> int:
        """Fetch every model listing the registry sync wants now and every quota and price
        query due (one after another: they are rare) and apply each; returns how many."""
        fetches = self.driver.due_fetches()
        for drive in fetches:
            conn = _Conn()
            try:
                self._advance(drive, conn)
            except StopIteration:
                pass
            finally:
                conn.drop(False)
        return len(fetches)

    def _probe(self, probe: Probe) -> None:
        conn = _Conn()
        try:
            self._advance(self.driver.probe(probe), conn)
        except StopIteration:
            pass
        except Exception:
            _log.exception("modelmesh: probe %s failed unexpectedly", probe.key)
        finally:
            conn.drop(False)


_NO_CONN = _Conn()  # for drives that open nothing


def probe_interval(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        raise ValueError(f"probe_check_interval must be a positive number of seconds, got {value!r}")
    return float(value)


class StreamHandle:
    """Iterates the chunks of a streaming call; `result` holds the Succeeded once it ends."""

    def __init__(self, transport: SyncTransport, call: Call) -> None:
        self._t = transport
        self.call = call
        self.result: Succeeded | None = None
        self._in_thread = False  # the generator is being closed by a caller, not by a finaliser
        self._gen = self._run()

    def __iter__(self) -> StreamHandle:
        return self

    def __next__(self) -> Deliver:
        return next(self._gen)

    def close(self) -> None:
        self._in_thread = True
        self._gen.close()

    def _run(self) -> Generator[Deliver, None, None]:
        conn = _Conn()
        drive = self._t.driver.stream(self.call)
        try:
            while True:
                try:
                    deliver = self._t._advance(drive, conn)
                except StopIteration as end:
                    self.result = end.value
                    return
                yield deliver
        except GeneratorExit:
            conn.drop(False, lock_free=not self._in_thread)
            raise
        finally:
            conn.drop(False)
            drive.close()  # a call not at its end is cancelled (lock-free)


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
