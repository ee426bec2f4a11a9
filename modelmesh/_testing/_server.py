"""FakeUpstream: a real HTTP/1.1 server on loopback that talks like an LLM vendor.

Theory of operation: a `ThreadingHTTPServer` bound to 127.0.0.1 on an ephemeral port; an
accept loop in one daemon thread and one worker thread per connection (keep-alive, so a
`requests.Session` reuses them). Each request is read whole, recorded, and matched with a
step, decided under the lock (the script queue first, then the `always` step, then the
default reply), and carried out outside it by `Exchange`. The accept loop waits on the
listening socket and a wake-up socketpair together, so `close()` is immediate: it wakes
the loop, sets the closing Event that cuts every real-time wait short, shuts down every
open connection and joins every thread it started.
"""
from __future__ import annotations

import contextlib
import json
import selectors
import socket
import socketserver
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from ._anthropic import AnthropicDialect
from ._batches import BatchAPI
from ._cohere import CohereDialect
from ._exchange import Exchange
from ._gemini import GeminiDialect
from ._media import DeepgramDialect, ElevenLabsDialect
from ._openai import OpenAIDialect
from ._steps import Headers, RecordedRequest, Reply, StepLike, coerce_step, resolve_step
from ._wire import Dialect, digest

__all__ = ["FakeUpstream", "upstreams", "refuse_connections", "STYLES"]

STYLES: dict[str, Dialect] = {"openai": OpenAIDialect(), "anthropic": AnthropicDialect(),
                              "gemini": GeminiDialect(), "elevenlabs": ElevenLabsDialect(),
                              "deepgram": DeepgramDialect(), "cohere": CohereDialect()}
_DEFAULT = Reply()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeUpstream/1"

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:  # tests read .requests, not stderr
        return None

    def _serve(self) -> None:
        self.server.upstream._serve(self)  # type: ignore[attr-defined]

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # many client threads connect at once; a small backlog drops SYNs
    daemon_threads = True
    block_on_close = False

    def __init__(self, upstream: FakeUpstream, host: str) -> None:
        self.upstream = upstream
        self._guard = threading.Lock()
        self._workers: set[threading.Thread] = set()
        self._open: set[socket.socket] = set()
        super().__init__((host, 0), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN: a DNS lookup we do not need.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.bound_address

    @property
    def bound_address(self) -> tuple[str, int]:
        """(host, port) of the listening socket."""
        host, port = self.server_address[:2]
        assert isinstance(host, str)  # an AF_INET socket bound by name
        return host, port

    def process_request(self, request: Any, client_address: Any) -> None:
        # Headers and body go out in separate writes; without NODELAY, Nagle and delayed
        # ACKs add 40 ms to every response and blur the timing of streamed chunks.
        with contextlib.suppress(OSError):
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        worker = threading.Thread(target=self._work, args=(request, client_address), daemon=True,
                                  name=f"FakeUpstream-{self.upstream.name}-conn")
        with self._guard:
            self._workers = {t for t in self._workers if t.is_alive()}
            self._workers.add(worker)
            self._open.add(request)
        worker.start()

    def _work(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            with self._guard:
                self._open.discard(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):  # the client hung up, or we cut the connection on purpose
            return
        if exc is not None:  # always set: socketserver calls this from an except block
            self.upstream.errors.append(exc)
        super().handle_error(request, client_address)

    def stop_connections(self) -> list[threading.Thread]:
        with self._guard:
            sockets, workers = list(self._open), list(self._workers)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        return workers


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
        chunks: list[bytes] = []
        while True:
            size = int(handler.rfile.readline(65537).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline(65537)
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length > 0 else b""


class _Tap:
    """The handler's output, calling `on_answer` once, at the answer's first byte."""

    def __init__(self, raw: Any, on_answer: Callable[[], None]) -> None:
        self._raw = raw
        self._on_answer: Callable[[], None] | None = on_answer

    def answered(self) -> None:
        on_answer, self._on_answer = self._on_answer, None
        if on_answer is not None:
            on_answer()

    def write(self, data: bytes) -> int:
        self.answered()
        return int(self._raw.write(data))

    def flush(self) -> None:
        self._raw.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


def _record(handler: BaseHTTPRequestHandler) -> RecordedRequest:
    parts = urlsplit(handler.path)
    body = _read_body(handler)
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = None
    return RecordedRequest(method=handler.command, path=unquote(parts.path),
                           query=dict(parse_qsl(parts.query, keep_blank_values=True)),
                           headers=Headers(list(handler.headers.items())), json=parsed, body=body,
                           peer=(handler.client_address[0], handler.client_address[1]))


class FakeUpstream:
    """A loopback server speaking `style` ("openai", "anthropic", "gemini", "cohere", or the
    speech vendors "elevenlabs" (TTS) and "deepgram" (STT)).

    `models` are what the models endpoint lists; `api_key`, when set, must be presented
    the vendor's way; `strict` makes it refuse what the vendor refuses (missing required
    fields, Azure's api-version, the anthropic-version header); `clock` stamps `created`.
    `prefill` makes it continue a conversation that ends in an assistant message, as
    Anthropic does (its default there): the answer is the rest of its text after that
    message's; elsewhere such a conversation gets the whole answer, as OpenAI gives it.
    OpenAI style also serves files and fine-tuning jobs (`_files.py`): `fine_tune_polls` is
    the retrieve that ends a job (1: the first), `fine_tune_error` a message jobs created
    while it is set fail with.
    """

    def __init__(self, style: str = "openai", *, name: str | None = None,
                 models: Iterable[str] | None = None, api_key: str | None = None,
                 text: str | None = None, strict: bool = True,
                 clock: Callable[[], float] | None = None, host: str = "127.0.0.1",
                 prefill: bool | None = None) -> None:
        if style not in STYLES:
            raise ValueError(f"style must be one of {sorted(STYLES)}, got {style!r}")
        if isinstance(models, str):
            raise TypeError("models must be a list of model ids, not one str")
        chosen = tuple(models) if models is not None else ("fake-model",)
        if not all(isinstance(m, str) and m for m in chosen):
            raise ValueError(f"models must be non-empty str ids, got {chosen!r}")
        if api_key is not None and (not isinstance(api_key, str) or not api_key):
            raise TypeError("api_key must be a non-empty str or None")
        if clock is not None and not callable(clock):
            raise TypeError(f"clock must be a callable returning seconds, got {clock!r}")
        self.style = style
        self.name = name if name is not None else style
        self.models = chosen
        self.text = text if text is not None else f"Hello from {self.name}"
        self.strict = bool(strict)
        self.prefill = style == "anthropic" if prefill is None else bool(prefill)
        self.errors: list[BaseException] = []
        self._dialect = STYLES[style]
        self._api_key = api_key
        self._clock = clock or time.time
        self._cond = threading.Condition()
        self._script: deque[Any] = deque()
        self._always: Any = None
        self._requests: list[RecordedRequest] = []
        self._seq = 0
        self._closed = False
        self._closing = threading.Event()
        self._in_flight = self._max_in_flight = 0
        self.batch_polls = 0  # status polls a submitted batch waits for before it is processed (_batches.py)
        # what the account endpoints report (OpenAI style): `quota` as OpenRouter's GET /v1/key
        # ({"limit": 100, "usage": 98}: USD), `balance` as DeepSeek's GET /user/balance
        # ({"total": "0.50", "currency": "USD", "available": True}); None: the endpoint is absent.
        # `prices`: model id -> (USD per input token, USD per output token), listed with the models
        self.quota: dict[str, Any] | None = None
        self.balance: dict[str, Any] | None = None
        self.prices: dict[str, tuple[float, float]] = {}
        # fine-tuning jobs (_files.py): the retrieve that ends a job, and the error it then fails with (None: it succeeds)
        self.fine_tune_polls = 1
        self.fine_tune_error: str | None = None
        self._batch_api = BatchAPI(self)
        self._server = _Server(self, host)
        self._wake_r, self._wake_w = socket.socketpair()
        self.host, self.port = self._server.bound_address
        self._thread = threading.Thread(target=self._accept_loop, daemon=True,
                                        name=f"FakeUpstream-{self.name}")
        self._thread.start()

    # -- addresses --------------------------------------------------------------------------

    @property
    def root_url(self) -> str:
        """`http://127.0.0.1:PORT`, e.g. an Azure endpoint."""
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The base URL a client is configured with: `/v1` (openai, anthropic), `/v1beta` (gemini)."""
        return self.root_url + self._dialect.prefix

    # -- scripting --------------------------------------------------------------------------

    def script(self, *steps: StepLike) -> FakeUpstream:
        """Queue steps, one per coming request, first in first out."""
        coerced = [coerce_step(s) for s in steps]
        with self._cond:
            self._script.extend(coerced)
        return self

    def always(self, step: StepLike | None) -> FakeUpstream:
        """Use `step` whenever the script queue is empty; `None` restores the default reply."""
        coerced = None if step is None else coerce_step(step)
        with self._cond:
            self._always = coerced
        return self

    def reset(self) -> None:
        """Forget recorded requests, queued steps and the `always` step."""
        with self._cond:
            self._script.clear()
            self._always = None
            self._requests.clear()
            self.errors.clear()

    @property
    def pending(self) -> int:
        """Scripted steps not yet used."""
        with self._cond:
            return len(self._script)

    # -- what was received ------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, in arrival order."""
        with self._cond:
            return list(self._requests)

    @property
    def last_request(self) -> RecordedRequest:
        with self._cond:
            if not self._requests:
                raise LookupError(f"{self!r} has received no request")
            return self._requests[-1]

    def wait_for_requests(self, count: int, timeout: float = 2.0) -> list[RecordedRequest]:
        """Block until `count` requests have arrived (for requests sent from other threads)."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._requests) >= count, timeout):
                raise TimeoutError(f"{self!r} got {len(self._requests)} requests, expected {count} "
                                   f"within {timeout}s")
            return list(self._requests)

    # -- serving ----------------------------------------------------------------------------

    @property
    def batches(self) -> list[Any]:
        """The batches submitted to its batch API (FakeBatch: id, lines, status, answers)."""
        with self._batch_api.lock:
            return list(self._batch_api.batches.values())

    @property
    def files(self) -> list[Any]:
        """The files its files API holds (FakeFile: id, filename, purpose, content, created_at)."""
        with self._batch_api.lock:
            return list(self._batch_api.files.files.values())

    @property
    def fine_tuning_jobs(self) -> list[Any]:
        """The fine-tuning jobs it was given (FakeFineTune: id, model, status, fine_tuned_model, ...)."""
        with self._batch_api.lock:
            return list(self._batch_api.files.jobs.values())

    @property
    def in_flight(self) -> int:
        """Requests received whose answer has not started going out."""
        with self._cond:
            return self._in_flight

    @property
    def max_in_flight(self) -> int:
        """The most requests that were ever in flight at once (see `in_flight`)."""
        with self._cond:
            return self._max_in_flight

    def _serves_fine_tuned(self, model: str | None) -> bool:
        with self._batch_api.lock:
            return model is not None and self._batch_api.files.serves_model(model)

    def _take_step(self) -> Any:
        """Under the lock: the step for the next request (or batch line), unresolved."""
        return self._script.popleft() if self._script else self._always

    def _answering(self) -> None:
        with self._cond:
            self._in_flight -= 1

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        request = _record(handler)
        with self._cond:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
        raw, tap = handler.wfile, _Tap(handler.wfile, self._answering)
        handler.wfile = tap  # type: ignore[assignment]  # counts the request until its answer starts
        try:
            self._serve_recorded(handler, request)
        finally:
            handler.wfile = raw
            tap.answered()

    def _serve_recorded(self, handler: BaseHTTPRequestHandler, request: RecordedRequest) -> None:
        with self._cond:
            self._requests.append(request)
            self._seq += 1
            salt = digest(self.name, self.port, self._seq)
            chosen = self._take_step()
            self._cond.notify_all()
        try:
            step = _DEFAULT if chosen is None else resolve_step(chosen, request)
        except Exception as exc:  # a test's own callable failed: say so loudly, in the response too
            self.errors.append(exc)
            message = f"FakeUpstream step failed: {exc!r}".encode()
            handler.send_response(500)
            handler.send_header("Content-Type", "text/plain")
            handler.send_header("Content-Length", str(len(message)))
            handler.end_headers()
            handler.wfile.write(message)
            return
        if self._batch_api.serves(request):
            return self._batch_api.serve(handler, request, step, salt)
        Exchange(handler, self, request, self._dialect.route(request), salt).run(step)

    def _accept_loop(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._server.socket, selectors.EVENT_READ, "accept")
            selector.register(self._wake_r, selectors.EVENT_READ, "wake")
            while True:
                for key, _ in selector.select():
                    if key.data == "wake":
                        return
                    try:
                        request, address = self._server.get_request()
                    except OSError:
                        continue
                    self._server.process_request(request, address)

    def close(self) -> None:
        """Stop serving, cut open connections and join every thread; idempotent."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
        self._closing.set()
        self._wake_w.send(b"\0")
        self._thread.join()
        self._server.server_close()
        for worker in self._server.stop_connections():
            worker.join(timeout=5.0)
        self._wake_r.close()
        self._wake_w.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> FakeUpstream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FakeUpstream(style={self.style!r}, name={self.name!r}, url={self.url!r})"


@contextlib.contextmanager
def upstreams(*specs: str | Mapping[str, Any]) -> Iterator[list[FakeUpstream]]:
    """Start several fake upstreams; each spec is a style or a dict of FakeUpstream arguments."""
    with contextlib.ExitStack() as stack:
        started = []
        for spec in specs:
            if isinstance(spec, str):
                upstream = FakeUpstream(spec)
            elif isinstance(spec, Mapping):
                upstream = FakeUpstream(**spec)
            else:
                raise TypeError(f"an upstream spec is a style name or a dict of arguments, got {spec!r}")
            stack.callback(upstream.close)
            started.append(upstream)
        yield started


def refuse_connections(host: str = "127.0.0.1") -> str:
    """A base URL on which nothing listens, for "connection refused" tests."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port = probe.getsockname()[1]
    return f"http://{host}:{port}"
