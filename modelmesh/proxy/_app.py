"""The OpenAI-compatible proxy as a WSGI application, over one MeshClient per process.

Theory of operation: `ProxyApp(mesh, ...)` is a plain WSGI callable, so Granian (what
`modelmesh serve` runs), gunicorn's gthread workers or any WSGI server can host it; the
server's threads share the one MeshClient, as a Django app's threads do. A request goes
through the door checks in order, each answering in OpenAI's error format when it fails:
CORS preflight (only when `proxy.cors_origins` is set), the liveness and readiness paths
(no key needed: a load balancer asks them), the key (`Authorization: Bearer`, compared in
constant time against digests, never logged or echoed), the route and method, the content
type, the body limit (the declared length is checked before a byte is read, and no more
than the limit is ever read). What passes is answered by `_serving.serve`, which the SDK
transport shares; a stream is a lazy WSGI iterable whose `close()` (which every WSGI
server calls, also when the client has gone away) ends the mesh stream and its upstream
connection.

Every response carries `x-request-id` (the upstream's or the mesh's for a routed answer,
else one made here), and each request is reported once, when its body is done, to
`access_log` as one flat dict: the routing outcome (pool, provider, model, attempts,
cost, tokens), status and latency. Nothing reported holds a key or a message body.

`GET /dashboard` is a self-contained page (no external assets, no build step) that polls
`GET /dashboard/data`, the process's `LiveView` snapshot; the data needs the master key
(or `--no-auth` on loopback), never a virtual key: it shows every pool and provider.
"""
from __future__ import annotations

import functools
import hashlib
import hmac
import importlib.resources
import ipaddress
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from .. import _wire_openai as wire
from .._core._errors import redact
from .._live import LiveView
from .._serving import Answer, BytesBody, SSEBody, error_answer, expected_content_type, json_answer, serve
from ..connectors.storage import StorageUnavailable
from ._keys import KeyRing, VirtualKey
from ._limits import Bucket, Limiter, retry_after_header
from ._metrics import Metrics

__all__ = ["ProxyApp"]

_log = logging.getLogger("modelmesh.proxy")

AccessLog = Callable[[dict[str, Any]], None]
# what the WSGI server frames itself; a header of ours must not repeat it (and PEP 3333 forbids hop-by-hop ones)
_FRAMING = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive", "content-encoding",
                      "te", "trailer", "upgrade", "proxy-authenticate", "proxy-authorization"})
_READ_PIECE = 64 * 1024
_STATUS_TEXT = {200: "OK", 204: "No Content", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
                404: "Not Found", 405: "Method Not Allowed", 409: "Conflict", 413: "Payload Too Large",
                415: "Unsupported Media Type", 422: "Unprocessable Entity", 429: "Too Many Requests",
                500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


def _status_line(status: int) -> str:
    return f"{status} {_STATUS_TEXT.get(status, 'Error' if status >= 400 else 'OK')}"


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or "localhost") is this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ProxyApp:
    """The WSGI application. `keys` are the credentials clients may present (the master key
    and `proxy.api_keys`); with none, `open_on_loopback` must be True (`--no-auth`), and then
    only clients on this machine are served. It owns `mesh`: `close()` closes it."""

    def __init__(self, mesh: Any, *, keys: Iterable[str] = (), open_on_loopback: bool = False,
                 max_body_bytes: int = 10 * 1024 * 1024, cors_origins: Iterable[str] = (),
                 aliases: Mapping[str, str] | None = None, access_log: AccessLog | None = None,
                 base_path: str = "/v1", keyring: KeyRing | None = None, limiter: Limiter | None = None,
                 per_key: Bucket | None = None, per_ip: Bucket | None = None, metrics: Metrics | None = None,
                 metrics_public: bool = False) -> None:
        digests = tuple(hashlib.sha256(k.encode()).digest() for k in keys if k)
        if not digests and not open_on_loopback:
            raise ValueError("ProxyApp: give the keys clients must present, or open_on_loopback=True "
                             "(no key; clients on this machine only)")
        self.mesh = mesh
        self._digests = digests
        self.auth_mode = "keys" if digests else "none (loopback only)"
        self.max_body_bytes = int(max_body_bytes)
        self.cors_origins = frozenset(cors_origins)
        self.aliases = dict(aliases or {})
        self.access_log = access_log
        self.base_path = base_path.rstrip("/")
        self._secrets = tuple(getattr(mesh.core, "secret_values", ()))
        if limiter is None and (per_key is not None or per_ip is not None):
            from ..connectors.storage import MemoryStorage

            limiter = Limiter(MemoryStorage())  # buckets of this process's own
        self.keyring, self.limiter, self.per_key, self.per_ip = keyring, limiter, per_key, per_ip
        self.metrics, self.metrics_public = metrics, metrics_public
        self.live = LiveView(mesh)  # what /dashboard shows: this process's view, kept from its events
        if metrics is not None:
            mesh.subscribe(metrics.on_event)  # the mesh's families (attempts, failovers, standbys) from its events
        self._limit_warned = False

    def close(self) -> None:
        try:
            if self.metrics is not None:
                self.metrics.flush()  # before the store closes with the mesh: nothing counted is lost
        finally:
            self.mesh.close()

    # -- the door ----------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = time.perf_counter()
        record: dict[str, Any] = {"method": environ.get("REQUEST_METHOD", ""), "path": environ.get("PATH_INFO", "")}
        who = _Caller()
        try:
            answer = self._answer(environ, who)
        except Exception as exc:  # noqa: BLE001 - a bug answers a 500 in OpenAI's shape, never a traceback
            _log.error("modelmesh proxy: unexpected %s answering %s %s: %s", type(exc).__name__, record["method"],
                       record["path"], redact(str(exc), self._secrets))
            answer = error_answer(wire.error(500, "The proxy failed unexpectedly (a bug in modelmesh); its log says more",
                                             "internal_error"))
        headers = self._headers(answer, environ)
        record["request_id"] = next(v for k, v in headers if k == "x-request-id")
        if answer.stream is None:
            headers.append(("content-length", str(len(answer.body))))
            start_response(_status_line(answer.status), headers)
            self._report(record, answer, started, environ, who)
            return [answer.body]
        start_response(_status_line(answer.status), headers)
        return _Streamed(answer, lambda: self._report(record, answer, started, environ, who))

    def _answer(self, environ: dict[str, Any], who: _Caller) -> Answer:
        method, path = environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", "") or "/"
        if method == "OPTIONS" and self.cors_origins and environ.get("HTTP_ORIGIN"):
            return self._preflight(environ)
        if path in ("/health", "/ready"):
            if method != "GET":
                return error_answer(wire.method_not_allowed(method, path, "GET"))
            return self._health() if path == "/health" else self._ready()
        if self.per_ip is not None:
            limited = self._take(f"ip/{environ.get('REMOTE_ADDR') or ''}", self.per_ip, "this client address")
            if limited is not None:
                return limited
        if path == "/metrics":
            return self._metrics(environ, method)
        if path in ("/dashboard", "/dashboard/", "/dashboard/data"):
            return self._dashboard(environ, method, path)
        denied = self._check_key(environ, who)
        if denied is not None:
            return error_answer(denied)
        vkey = who.key
        bucket = Bucket(vkey.rpm) if vkey is not None and vkey.rpm is not None else self.per_key
        if bucket is not None and who.bucket is not None:
            limited = self._take(who.bucket, bucket, "this key")
            if limited is not None:
                return limited
        if vkey is not None and self.keyring is not None:
            try:
                spent = self.keyring.over_budget(vkey)
            except StorageUnavailable:
                return error_answer(_storage_down())
            if spent is not None:
                return error_answer(_over_budget(vkey, spent))
        relative = path[len(self.base_path):] if path.startswith(self.base_path + "/") else None
        found = wire.route(method, relative) if relative is not None else None
        if relative is None or found is None:
            allowed = wire.allowed_methods(relative) if relative is not None else None
            return error_answer(wire.method_not_allowed(method, path, allowed) if allowed else wire.unknown_route(method, path))
        body = b""
        content_type = environ.get("CONTENT_TYPE") or ""
        if method == "POST":
            kind = content_type.partition(";")[0].strip().lower()
            expected = expected_content_type(found.op)
            if expected is not None and kind != expected:
                return error_answer(wire.unsupported_media_type(content_type, expected))
            read = _read_body(environ, self.max_body_bytes)
            if read is None:
                return error_answer(wire.too_large(self.max_body_bytes))
            body = read
        permit = _permit(vkey) if vkey is not None and vkey.pools is not None else None
        return serve(self.mesh, method, path, body, base_path=self.base_path, aliases=self.aliases, permit=permit,
                     content_type=content_type, query=environ.get("QUERY_STRING") or "",
                     provider=environ.get("HTTP_X_MODELMESH_PROVIDER") or None)

    def _take(self, name: str, bucket: Bucket, whose: str) -> Answer | None:
        """A token from the bucket `name`, or the 429 that says when to come back. A store that
        cannot be reached lets the request through (logged once per outage)."""
        assert self.limiter is not None
        try:
            wait = self.limiter.take(name, bucket)
        except StorageUnavailable as exc:
            if not self._limit_warned:
                self._limit_warned = True
                _log.warning("modelmesh proxy: rate limits not applied, the store is unreachable (%s)",
                             redact(str(exc), self._secrets))
            return None
        self._limit_warned = False
        if wait is None:
            return None
        return error_answer(_rate_limited(whose, bucket, wait))

    def _metrics(self, environ: dict[str, Any], method: str) -> Answer:
        if method != "GET":
            return error_answer(wire.method_not_allowed(method, "/metrics", "GET"))
        if not self.metrics_public:
            denied = self._check_key(environ, _Caller(), virtual=False)
            if denied is not None:
                return error_answer(denied)
        if self.metrics is None:
            return error_answer(wire.unknown_route(method, "/metrics"))
        now = time.time()
        gauges = []
        for name, rows in self.mesh.core.snapshot(now)["pools"].items():
            gauges.append(("modelmesh_standby_models", (("pool", name),),
                           float(sum(row["status"] != "active" for row in rows))))
            gauges.append(("modelmesh_pool_models", (("pool", name),), float(len(rows))))
        text = self.metrics.render(gauges)
        return Answer(status=200, headers=[("content-type", "text/plain; version=0.0.4; charset=utf-8")],
                      body=text.encode())

    def _dashboard(self, environ: dict[str, Any], method: str, path: str) -> Answer:
        if method != "GET":
            return error_answer(wire.method_not_allowed(method, path, "GET"))
        if path != "/dashboard/data":
            return Answer(status=200, headers=[("content-type", "text/html; charset=utf-8"),
                                               ("content-security-policy", _PAGE_POLICY),
                                               ("cache-control", "no-store")], body=_page())
        denied = self._check_key(environ, _Caller(), virtual=False)
        if denied is not None:
            return error_answer(denied)
        return json_answer(200, self.live.snapshot())

    def _check_key(self, environ: dict[str, Any], who: _Caller, *, virtual: bool = True) -> wire.WireError | None:
        if not self._digests:  # --no-auth: this machine only, whatever the server was bound to
            peer = environ.get("REMOTE_ADDR") or ""
            return None if is_loopback(peer) else wire.forbidden(
                "This proxy runs without authentication (--no-auth) and serves clients on its own machine only")
        scheme, _, token = (environ.get("HTTP_AUTHORIZATION") or "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return wire.missing_key()
        presented = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
        matched = None
        for digest in self._digests:  # every one compared: the time taken says nothing about which
            if hmac.compare_digest(presented, digest):
                matched = digest
        if matched is not None:
            who.bucket = f"key/m{matched.hex()[:16]}"
            return None
        if not virtual or self.keyring is None:
            return wire.wrong_key()
        try:
            key = self.keyring.find(token)
        except StorageUnavailable as exc:
            _log.warning("modelmesh proxy: a virtual key could not be checked: %s", redact(str(exc), self._secrets))
            return _storage_down()
        if key is None:
            return wire.wrong_key()
        if key.revoked is not None:
            return _revoked()
        who.key, who.bucket = key, f"key/v{key.id}"
        return None

    # -- health ------------------------------------------------------------------------------
    def _health(self) -> Answer:
        return json_answer(200, {"status": "ok"})

    def _ready(self) -> Answer:
        """Ready: the configuration is loaded (this app exists), the shared storage answers
        when one is configured, and every pool has a model available now."""
        reasons = []
        shared = getattr(self.mesh.transport, "shared", None)
        if shared is not None:
            from ..connectors.storage import StorageUnavailable

            try:
                shared.storage.load("ready-check")
            except StorageUnavailable as exc:
                reasons.append(f"storage unreachable ({redact(str(exc), self._secrets)})")
        pools = self.mesh.core.snapshot(time.time())["pools"]
        available = {name: sum(row["status"] == "active" for row in rows) for name, rows in pools.items()}
        reasons += [f"pool '{name}' has no model available" for name, count in available.items() if not count]
        if not self.mesh.core.models:
            reasons.append("no model is configured")
        if reasons:
            body = {"error": {"message": "not ready: " + "; ".join(reasons), "type": "server_error", "param": None,
                              "code": "not_ready"}, "reasons": reasons, "pools": available}
            return json_answer(503, body)
        return json_answer(200, {"status": "ready", "pools": available})

    # -- CORS --------------------------------------------------------------------------------
    def _allowed_origin(self, environ: dict[str, Any]) -> str | None:
        origin = environ.get("HTTP_ORIGIN")
        if not origin or not self.cors_origins:
            return None
        if origin in self.cors_origins:
            return str(origin)
        return "*" if "*" in self.cors_origins else None

    def _preflight(self, environ: dict[str, Any]) -> Answer:
        if self._allowed_origin(environ) is None:
            return error_answer(wire.forbidden("This origin is not in proxy.cors_origins"))
        asked = environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS") or "authorization, content-type"
        return Answer(status=204, headers=[("access-control-allow-methods", "GET, POST, OPTIONS"),
                                           ("access-control-allow-headers", asked[:1000]),
                                           ("access-control-max-age", "600")])

    def _headers(self, answer: Answer, environ: dict[str, Any]) -> list[tuple[str, str]]:
        headers = [(k.lower(), v) for k, v in answer.headers if k.lower() not in _FRAMING]
        if not any(k == "x-request-id" for k, _ in headers):
            headers.append(("x-request-id", f"req_{uuid.uuid4().hex}"))
        origin = self._allowed_origin(environ)
        if origin is not None:
            headers += [("access-control-allow-origin", origin), ("vary", "origin"),
                        ("access-control-expose-headers", "x-request-id, x-modelmesh-provider, x-modelmesh-model, "
                                                          "x-modelmesh-attempts, x-modelmesh-pool, retry-after")]
        return headers

    # -- the access log ----------------------------------------------------------------------
    def _report(self, record: dict[str, Any], answer: Answer, started: float, environ: dict[str, Any],
                who: _Caller) -> None:
        if self.access_log is None and self.metrics is None and who.key is None:
            return
        served = answer.stream.result if answer.stream is not None else answer.served
        error = answer.error if answer.stream is None else answer.stream.error
        attempts = getattr(error, "attempts", None) or (served.attempts if served is not None else ())
        last = attempts[-1] if attempts and served is None else None
        record.update(
            ts=round(time.time(), 3), client=environ.get("REMOTE_ADDR"), status=answer.status, op=answer.op,
            requested=answer.model, stream=answer.stream is not None,
            pool=served.pool if served is not None else None,
            provider=served.provider if served is not None else (last.provider if last else None),
            model=served.model if served is not None else (last.model if last else None),
            attempts=len(attempts), latency_ms=round((time.perf_counter() - started) * 1000, 3),
            cost=round(served.cost, 8) if served is not None else 0.0,
            prompt_tokens=served.prompt_tokens if served is not None else 0,
            completion_tokens=served.completion_tokens if served is not None else 0,
            error=type(error).__name__ if error is not None else None)
        if who.key is not None:
            record["key"] = who.key.id  # the key's id, never the key
            if served is not None and self.keyring is not None:
                try:
                    self.keyring.record_spend(who.key, served.cost)
                except StorageUnavailable as exc:
                    _log.warning("modelmesh proxy: a key's spend was not counted: %s", redact(str(exc), self._secrets))
        if self.metrics is not None and record["path"] not in _UNCOUNTED:
            refs = [(a.provider, a.model) for a in attempts]
            self.metrics.observe(record, sum(a != b for a, b in zip(refs, refs[1:], strict=False)))
            self.metrics.maybe_flush()
        if self.access_log is None:
            return
        try:
            self.access_log(record)
        except Exception:  # noqa: BLE001 - a broken log must not break the answer it logs
            _log.exception("modelmesh proxy: the access log failed")


class _Streamed:
    """A stream's WSGI body: SSE pieces (or speech audio) as the server asks for them.
    `close()` (the server calls it when the body is done or the client has gone) ends the
    mesh stream, then reports the request."""

    def __init__(self, answer: Answer, done: Callable[[], None]) -> None:
        # the WSGI app serves a MeshClient: its streams are sync
        assert isinstance(answer.stream, (SSEBody, BytesBody))
        self._stream = answer.stream
        self._done: Callable[[], None] | None = done

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._stream)

    def close(self) -> None:
        done, self._done = self._done, None
        try:
            self._stream.close()
        finally:
            if done is not None:
                done()


def _read_body(environ: dict[str, Any], limit: int) -> bytes | None:
    """The request body, or None when it is over `limit` bytes: a declared length over it is
    refused unread; an undeclared one (chunked) is read up to the limit and no further."""
    declared = environ.get("CONTENT_LENGTH") or ""
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    if declared:
        try:
            length = int(declared)
        except ValueError:
            return b""  # a server passes no unparsable length; nothing to read
        if length > limit:
            return None
        return stream.read(length) if length > 0 else b""
    parts: list[bytes] = []
    size = 0
    while True:
        piece = stream.read(min(_READ_PIECE, limit + 1 - size))
        if not piece:
            return b"".join(parts)
        parts.append(piece)
        size += len(piece)
        if size > limit:
            return None


_UNCOUNTED = frozenset({"/health", "/ready", "/metrics", "/dashboard", "/dashboard/",
                        "/dashboard/data"})  # probes, scrapes and the dashboard are not traffic
# the page's own script and styles, and fetches to this origin: nothing else may load
_PAGE_POLICY = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; "
                "form-action 'none'; frame-ancestors 'none'")


@functools.cache
def _page() -> bytes:
    return (importlib.resources.files(__package__) / "dashboard.html").read_bytes()


class _Caller:
    """Who is asking: the virtual key (None for the master key) and the name of their bucket."""

    __slots__ = ("key", "bucket")

    def __init__(self) -> None:
        self.key: VirtualKey | None = None
        self.bucket: str | None = None


def _permit(key: VirtualKey) -> Callable[[str], wire.WireError | None]:
    allowed = frozenset(key.pools or ())

    def permit(pool: str) -> wire.WireError | None:
        if pool in allowed:
            return None
        return wire.forbidden(f"This key may not use the pool '{pool}' (it may use: {', '.join(sorted(allowed))})")

    return permit


def _rate_limited(whose: str, bucket: Bucket, wait: float) -> wire.WireError:
    return wire.error(429, f"Rate limit reached for {whose}: {bucket.rpm:g} requests per minute. "
                           f"Please try again in {wait:.3g}s.", "rate_limit_exceeded", type="requests",
                      headers=[("retry-after", retry_after_header(wait)),
                               ("retry-after-ms", str(max(1, round(wait * 1000))))])


def _over_budget(key: VirtualKey, spent: float) -> wire.WireError:
    return wire.error(429, f"This key has spent its budget of {key.budget:g} USD this {key.period} ({spent:.4f} USD).",
                      "insufficient_quota", type="insufficient_quota")


def _revoked() -> wire.WireError:
    return wire.error(401, "This API key has been revoked.", "invalid_api_key")


def _storage_down() -> wire.WireError:
    return wire.error(503, "The key could not be checked: the shared storage is unreachable", "storage_unavailable")
