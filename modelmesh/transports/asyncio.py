"""The asyncio shell: drives the core over httpx.AsyncClient.

It decides nothing: the drive loop (`_drive.py`, the same one the sync shell runs) yields
the I/O a call needs and `_advance` awaits each request. Everything here is that I/O:
sending with httpx, reading an open response, sleeping, and running shared-storage I/O
(`Blocking`) in a worker thread, so no call on the event loop blocks. The core is shared
by every task (and any thread) of the process; its lock is held around shared health only,
for microseconds, never across an await.

Cancelling a task that awaits a request cancels its attempt: the CancelledError leaves
`_advance`, the drive is closed (the call is fed `Cancelled`, which hands the model's trial
slot back) and the open response is closed (its connection is dropped, not reused). A
stream abandoned without `aclose()` is cancelled by the garbage collector the same way,
lock-free, and its response is closed on the loop it was opened on.

Timeouts: httpx bounds the connect and each read natively. A stream's first chunk and its
later gaps have different bounds (first_chunk_timeout, idle_timeout); httpx fixes a
response's read timeout when it is sent, so the response is opened with the larger one and
the smaller is applied with an asyncio timeout: to each read it bounds, and, when it is
the first-chunk timeout, to sending the request and receiving the head (connect included,
a little stricter than the sync shell, whose socket timeout starts after the connect).

Recovery probes run in an asyncio task started by the first request (on that request's
loop) and cancelled by `aclose()`. A client belongs to the event loop it first ran on
(httpx's connections do); using it from another loop raises a clear error.

Proxies and CA bundles are found as the sync shell finds them (`_http.proxy_for`,
`_http.ca_bundle`, from the client's `environ`); httpx's own environment reading is off.
"""
from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import socket
import ssl
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx

from .._core import _errors as E
from .._core._call import Call
from .._core._mesh import MeshCore, Probe
from .._core._protocol import Deliver, Succeeded, TransportFailed
from .._core._types import ErrorKind
from ._drive import Driver, IdleTimeout, Open, ReadSome, Release, Sleep
from ._http import _DEFAULT_HEADERS, ProxyUnavailable, body_of, ca_bundle, proxy_for
from .sync import _PROBE_WORKERS, _unsendable, probe_interval

__all__ = ["AsyncTransport", "AsyncStreamHandle"]

_log = logging.getLogger("modelmesh")


def _translate(exc: BaseException) -> TransportFailed:
    """httpx's exceptions (and a timeout of ours) -> the core's vocabulary."""
    if isinstance(exc, httpx.ConnectTimeout):
        return TransportFailed(kind=ErrorKind.TIMEOUT, message="connect timeout", connect=True)
    if isinstance(exc, (httpx.TimeoutException, TimeoutError, asyncio.TimeoutError)):
        return TransportFailed(kind=ErrorKind.TIMEOUT, message="read timeout")
    if isinstance(exc, httpx.ProxyError):
        return TransportFailed(kind=ErrorKind.CONNECTION, message="the proxy failed", connect=True)
    if isinstance(exc, httpx.ConnectError):
        causes = _causes(exc)
        if any(isinstance(c, ssl.SSLError) for c in causes):
            return TransportFailed(kind=ErrorKind.CONNECTION, message="TLS handshake failed", connect=True)
        if any(isinstance(c, socket.gaierror) for c in causes):
            return TransportFailed(kind=ErrorKind.CONNECTION, message="host name not found", connect=True)
        return TransportFailed(kind=ErrorKind.CONNECTION, message="connection refused", connect=True)
    if isinstance(exc, httpx.DecodingError):
        return TransportFailed(kind=ErrorKind.MALFORMED, message="response body could not be decompressed")
    if isinstance(exc, (httpx.UnsupportedProtocol, httpx.InvalidURL, httpx.LocalProtocolError)):
        return _unsendable(exc)
    return TransportFailed(kind=ErrorKind.CONNECTION, message=f"connection failed ({type(exc).__name__})")


def _causes(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and len(out) < 8:
        out.append(seen)
        seen = seen.__cause__ or seen.__context__
    return out


if sys.version_info >= (3, 11):
    async def _bounded(aw: Any, seconds: float) -> Any:
        async with asyncio.timeout(seconds):
            return await aw
else:  # pragma: no cover - Python 3.10
    async def _bounded(aw: Any, seconds: float) -> Any:
        return await asyncio.wait_for(aw, seconds)


SHARD = 16  # requests in flight per httpx client before another is opened
_STEPS_PER_TICK = 4  # I/O steps of requests per round of the event loop (see AsyncTransport._next_tick)


class AsyncHttp:
    """httpx clients for one mesh client, per proxy (None: direct), found once per URL.

    A route's requests are spread over several httpx clients of at most SHARD requests in
    flight each (one more is opened when all are that busy). httpcore's pool looks at every
    connection it holds, and polls each idle one, whenever a request starts or a response
    is closed: with hundreds of concurrent requests on one pool that is quadratic, and it
    held the event loop for over 100 ms at a time (200 tasks); with SHARD it stays small.
    Each client keeps up to SHARD idle connections (httpx closes one idle for 5 s), so a
    burst as large as the last one finds its connections open."""

    def __init__(self, *, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ
        # like urllib3's block=False: never wait for a connection; keep SHARD idle ones per client
        self._limits = httpx.Limits(max_connections=None, max_keepalive_connections=SHARD)
        self._verify: Any = None  # the SSL context every client shares (made once, in a thread)
        self._shards: dict[str | None, list[_Shard]] = {}
        self._routes: dict[str, list[_Shard]] = {}

    async def acquire(self, url: str) -> _Shard:
        """The least busy client for `url` (a new one when every client has SHARD in flight);
        counted busy until `release`."""
        shards = self._routes.get(url)
        if shards is None:
            proxy = proxy_for(url, self._environ)
            shards = self._routes[url] = self._shards.setdefault(proxy, [])
        best = min(shards, key=_busy, default=None)
        if best is None or best.busy >= SHARD:
            # made in a worker thread: the first loads a CA bundle and imports httpcore, anyio
            # and h11 (tens of ms that would otherwise hold up the loop)
            best = _Shard(await asyncio.to_thread(self._make, proxy_for(url, self._environ)))
            shards.append(best)
        best.busy += 1
        return best

    def _make(self, proxy: str | None) -> httpx.AsyncClient:
        if self._verify is None:
            import anyio._backends._asyncio  # noqa: F401 - what httpcore imports at its first connect
            import h11  # noqa: F401

            self._verify = _ssl_context(ca_bundle(self._environ))
        try:
            return httpx.AsyncClient(proxy=proxy, verify=self._verify, trust_env=False, limits=self._limits,
                                     headers=_DEFAULT_HEADERS, follow_redirects=False, timeout=None)
        except ImportError:  # httpx needs socksio for a SOCKS proxy
            raise ProxyUnavailable("the environment names a SOCKS proxy, which needs socksio "
                                   "(pip install 'httpx[socks]')") from None

    def clients(self) -> list[httpx.AsyncClient]:
        return [shard.client for shards in self._shards.values() for shard in shards]

    async def aclose(self) -> None:
        clients = self.clients()
        self._shards, self._routes = {}, {}
        for client in clients:
            await client.aclose()


class _Shard:
    __slots__ = ("client", "busy")

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.busy = 0


def _busy(shard: _Shard) -> int:
    return shard.busy


def _ssl_context(cafile: str | None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=cafile)


class Done:
    """A drive's end, with its result."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


class _Conn:
    """The response a drive has open (at most one at a time), the client it came from, and
    the bound of its next read."""

    __slots__ = ("response", "chunks", "shard", "native", "bound")

    def __init__(self) -> None:
        self.response: httpx.Response | None = None
        self.chunks: Any = None
        self.shard: _Shard | None = None
        self.native = 0.0  # the read timeout httpx applies to each read of this response
        self.bound: float | None = None  # a smaller one, applied here; None: httpx's is the bound

    async def drop(self) -> None:
        r, self.response, self.chunks = self.response, None, None
        shard, self.shard = self.shard, None
        if shard is not None:
            shard.busy -= 1
        if r is not None:
            with contextlib.suppress(Exception):  # closing a broken connection may fail; it is gone either way
                await r.aclose()  # read to its end: the connection goes back to the pool; else it is closed


class AsyncTransport:
    def __init__(
        self,
        core: MeshCore,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Any] | None = None,
        environ: Mapping[str, str] | None = None,
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
        self.sleep = sleep or asyncio.sleep  # a FakeClock's sleep (plain) is called; a coroutine awaited
        self.driver = Driver(core, clock=clock, emit=on_event, shared=shared, sync_policy=sync_policy,
                             sync_interval=sync_interval, secrets=secrets, discovery=discovery)
        self.http = AsyncHttp(environ=environ)
        self._probe_every = probe_interval(probe_check_interval)
        self.round_hooks: list[Callable[[], Awaitable[Any]]] = []  # more work of each background round
        self._prober: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._steps = 0  # steps of requests taken in this round of the event loop (see _next_tick)
        self._tick_reset = False
        core.started(clock())
        if core.starts_background:  # probe_on_start: in a task now when a loop runs, else at the first request
            with contextlib.suppress(RuntimeError):  # no running loop
                self._check_loop()
                self._ensure_prober(now=True)

    @property
    def shared(self) -> Any:
        return self.driver.shared

    async def _next_tick(self) -> None:
        """Wait for the loop's next round. Each step of a request costs a fraction of a
        millisecond; hundreds of tasks ready at once (a burst of requests, or of answers)
        would run all their steps in one round of the loop, and every other task of the
        application would wait for the lot. Past _STEPS_PER_TICK steps in a round, a task
        lets the loop go round first. Throughput is the same; the loop stays responsive."""
        while self._steps >= _STEPS_PER_TICK:
            if not self._tick_reset:  # the first to wait (in this round) has the count reset next round
                self._tick_reset = True
                asyncio.get_running_loop().call_soon(self._new_tick)
            await asyncio.sleep(0)

    def _new_tick(self) -> None:
        self._steps = 0
        self._tick_reset = False

    def _check_loop(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise E.InvalidArgumentError("this AsyncMeshClient belongs to the event loop it first ran on (its "
                                         "connections do); make one client per event loop")
        if self._closed:
            raise E.InvalidArgumentError("this AsyncMeshClient is closed")

    async def aclose(self) -> None:
        """Cancel the probe task, close the connections and, with shared storage, sync one last
        time (in a thread); idempotent."""
        self._closed = True
        prober, self._prober = self._prober, None
        if prober is not None and not prober.done():
            prober.cancel()
            await asyncio.gather(prober, return_exceptions=True)  # raises only if our own task is cancelled
        await self.http.aclose()
        if self.driver.shared is not None:
            await asyncio.to_thread(self.driver.close_shared)

    async def sync(self, *, force: bool = True, patient: bool = True) -> bool:
        """Exchange health with the other processes now, in a worker thread; never raises."""
        return await asyncio.to_thread(self.driver.sync, force, patient)

    # -- the drive: perform what the shared loop asks ---------------------------------------
    async def _advance(self, drive: Any, conn: _Conn, result: Any = None) -> Any:
        """Await the drive's I/O requests until it yields a Deliver (returned) or ends (its
        result returned as `Done`: a coroutine may not let StopIteration out). An error of
        this shell's own is thrown into the drive; a CancelledError leaves, and the caller
        closes the drive (the call is cancelled) and the response."""
        error: Exception | None = None
        try:
            while True:
                if self._steps >= _STEPS_PER_TICK:  # before the drive runs: its step is the core's work
                    await self._next_tick()
                self._steps += 1
                op = drive.send(result) if error is None else drive.throw(error)
                error = None
                kind = type(op)
                try:
                    if kind is Deliver:
                        return op
                    if kind is ReadSome:
                        result = await self._read(conn)
                    elif kind is Open:
                        await conn.drop()
                        result = await self._open(op, conn)
                    elif kind is Release:
                        await conn.drop()
                        result = None
                    elif kind is IdleTimeout:
                        conn.bound = op.seconds if op.seconds < conn.native else None
                        result = True
                    elif kind is Sleep:
                        result = self.sleep(op.seconds)
                        if inspect.isawaitable(result):
                            result = await result
                    else:  # Blocking: shared storage I/O, off the event loop
                        result = await asyncio.to_thread(op.fn, *op.args)
                except Exception as exc:  # noqa: BLE001 - handed to the drive, which translates it
                    error = exc
        except StopIteration as end:
            return Done(end.value)

    async def _open(self, op: Open, conn: _Conn) -> Any:
        """Send `op.request`, never following a redirect; (status, headers) or TransportFailed."""
        req = op.request
        native = op.read_timeout if op.idle_timeout is None else max(op.read_timeout, op.idle_timeout)
        try:
            conn.shard = shard = await self.http.acquire(req.url)
            client = shard.client
            request = client.build_request(
                req.method, req.url, headers=req.headers, content=body_of(req),
                timeout=httpx.Timeout(connect=op.connect_timeout, read=native, write=native, pool=op.connect_timeout))
            if native > op.read_timeout:  # the head is bounded by the first-chunk timeout, the smaller
                r = await _bounded(client.send(request, stream=True), op.read_timeout)
            else:
                r = await client.send(request, stream=True)
        except ProxyUnavailable as exc:
            return TransportFailed(kind=ErrorKind.MISCONFIGURED, message=str(exc))
        except (ValueError, UnicodeError) as exc:  # a header or URL that cannot be sent
            return _unsendable(exc)
        except Exception as exc:  # noqa: BLE001 - httpx's errors, translated
            return _translate(exc)
        conn.response, conn.chunks = r, r.aiter_bytes()
        conn.native = native
        conn.bound = op.read_timeout if native > op.read_timeout else None
        return r.status_code, r.headers

    @staticmethod
    async def _read(conn: _Conn) -> Any:
        try:
            if conn.bound is None:
                return await conn.chunks.__anext__()
            return await _bounded(conn.chunks.__anext__(), conn.bound)
        except StopAsyncIteration:
            return b""
        except Exception as exc:  # noqa: BLE001 - every way a read can break is translated, none escapes
            failed = _translate(exc)
            if failed.kind is ErrorKind.CONNECTION:  # the body ended early, or the connection broke: what broke
                return TransportFailed(kind=ErrorKind.CONNECTION, message=type(exc).__name__)
            return failed

    async def start(self, op: str, body: dict[str, Any], *, model: str, stream: bool, options: Any = None) -> Call:
        self._check_loop()
        self._ensure_prober()
        done = await self._advance(self.driver.begin(op, body, model=model, stream=stream, options=options), _Conn())
        assert type(done) is Done, "starting a call delivers nothing"
        return done.value

    async def execute(self, call: Call) -> Succeeded:
        conn = _Conn()
        drive = self.driver.execute(call)
        try:
            done = await self._advance(drive, conn)
        finally:
            drive.close()  # cancelled mid-attempt: the call is fed Cancelled, its trial slot handed back
            await conn.drop()
        assert type(done) is Done, "a non-streaming call delivers nothing"
        return done.value

    def stream(self, call: Call) -> AsyncStreamHandle:
        return AsyncStreamHandle(self, call)

    # -- probes ------------------------------------------------------------------------------
    def _ensure_prober(self, now: bool = False) -> None:
        if self._prober is None or self._prober.done():
            now = now or (self.core.starts_background and self._prober is None)
            self._prober = asyncio.get_running_loop().create_task(self._probe_loop(now), name="modelmesh-probes")

    async def _probe_loop(self, now: bool = False) -> None:
        if now:
            await self.background_round()
        while True:
            await asyncio.sleep(self._probe_every)
            await self.background_round()

    async def background_round(self) -> None:
        """One round of the background task: due probes and health checks, due registry syncs,
        the periodic storage sync, the client's `round_hooks` (coroutine functions: its
        fine-tuning jobs followed). Never raises (but is cancellable)."""
        try:
            await self.run_probes()
            await self.run_discovery()
            if self.driver.sync_due():
                await asyncio.to_thread(self.driver.sync, False, True)
        except Exception:  # a bug here must not end recovery for the life of the client
            _log.exception("modelmesh: a round of recovery probes failed")
        for hook in self.round_hooks:
            try:
                await hook()
            except Exception:
                _log.exception("modelmesh: a background check (%r) failed", hook)

    async def run_probes(self) -> int:
        """Send every probe recovery asks for now (up to 4 at once) and record the outcomes;
        returns how many were sent. The probe task calls this; so may a user or a test."""
        probes = self.driver.due_probes()
        if probes:
            gate = asyncio.Semaphore(_PROBE_WORKERS)

            async def one(probe: Probe) -> None:
                async with gate:
                    await self._probe(probe)

            await asyncio.gather(*(one(p) for p in probes))
        return len(probes)

    async def run_discovery(self) -> int:
        """Fetch every model listing the registry sync wants now and every quota and price query
        due, and apply each; returns how many."""
        fetches = self.driver.due_fetches()
        for drive in fetches:
            conn = _Conn()
            try:
                await self._advance(drive, conn)
            finally:
                drive.close()
                await conn.drop()
        return len(fetches)

    async def _probe(self, probe: Probe) -> None:
        conn = _Conn()
        drive = self.driver.probe(probe)
        try:
            await self._advance(drive, conn)
        except Exception:
            _log.exception("modelmesh: probe %s failed unexpectedly", probe.key)
        finally:
            drive.close()
            await conn.drop()


class AsyncStreamHandle:
    """Iterates (async) the chunks of a streaming call; `result` holds the Succeeded once it ends."""

    def __init__(self, transport: AsyncTransport, call: Call) -> None:
        self._t = transport
        self.call = call
        self.result: Succeeded | None = None
        self._conn = _Conn()
        self._drive: Any = transport.driver.stream(call)
        self._loop = asyncio.get_running_loop()

    def __aiter__(self) -> AsyncStreamHandle:
        return self

    async def __anext__(self) -> Deliver:
        drive = self._drive
        if drive is None:
            raise StopAsyncIteration
        try:
            got = await self._t._advance(drive, self._conn)
        except BaseException:  # the call's error, or this task cancelled: nothing more to read
            await self.aclose()
            raise
        if type(got) is Done:
            self.result = got.value
            await self.aclose()
            raise StopAsyncIteration
        deliver: Deliver = got
        return deliver

    async def aclose(self) -> None:
        drive, self._drive = self._drive, None
        if drive is not None:
            drive.close()  # a call not at its end is cancelled
        await self._conn.drop()

    def __del__(self) -> None:
        # abandoned without aclose(): the drive cancels its call when collected (lock-free);
        # the response is closed on its own loop, never here (a finaliser takes no lock)
        conn = getattr(self, "_conn", None)
        if conn is not None and conn.response is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: its connections went with it
                self._loop.call_soon_threadsafe(_close_later, conn)


def _close_later(conn: _Conn) -> None:
    asyncio.ensure_future(conn.drop())
