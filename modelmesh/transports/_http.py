"""HTTP for the sync shell: urllib3 driven directly, or a user's `requests.Session`.

Theory of operation: by default requests go straight to urllib3 (requests' own engine),
skipping what requests adds per call: the environment proxy scan, netrc lookup, hooks,
cookie jars and a second layer of response objects. What requests would find in the
environment is found here too, once per URL rather than once per request: the proxy
(`HTTP_PROXY`/`HTTPS_PROXY`/`ALL_PROXY`, either case, honouring `NO_PROXY`) and the CA
bundle (`REQUESTS_CA_BUNDLE`, `CURL_CA_BUNDLE`, `SSL_CERT_FILE`, else certifi's, else the
system's). The environment is the mapping the client was given (`os.environ` unless the
caller chose another), read when a URL is first used. netrc is not consulted: every
request carries its provider's credentials in its headers.

A caller who needs requests itself (mounted adapters, a corporate auth hook) passes a
`requests.Session`; it is then used as given, with its own environment handling.

Either way one response type comes back: something with `status`, `headers`, `read1`,
`release_conn` and `close` (urllib3's HTTPResponse, or a body already read in full by a
custom requests adapter). Redirects are never followed (credentials would follow them)
and urllib3 never retries (the core decides what is retried, and where).
"""
from __future__ import annotations

import json
import os
import threading
import warnings
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import urllib3

from .. import __version__

__all__ = ["Http", "ProxyUnavailable", "Whole", "dumps"]

USER_AGENT = f"modelmesh-lite/{__version__}"
_DEFAULT_HEADERS = {"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate"}

_orjson: Any
try:  # the `fast` extra: orjson writes request bodies too (plain JSON only, as check_body made sure)
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None


def dumps(payload: Any) -> bytes:
    """A request body as UTF-8 JSON bytes (NaN and Infinity refused, as requests does)."""
    if _orjson is not None:
        return _orjson.dumps(payload)
    return json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


class ProxyUnavailable(ValueError):
    """The environment names a proxy this installation cannot use."""


class Whole:
    """A response whose body a custom requests adapter has already read in full."""

    def __init__(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self._body = body
        self.connection = None

    def read1(self, amt: int | None = None, decode_content: bool | None = None) -> bytes:
        if amt is None or amt >= len(self._body):
            out, self._body = self._body, b""
        else:
            out, self._body = self._body[:amt], self._body[amt:]
        return out

    def release_conn(self) -> None:
        return None

    def close(self) -> None:
        self._body = b""


def _proxy_settings(environ: Mapping[str, str]) -> tuple[dict[str, str], str]:
    """({scheme: proxy URL}, NO_PROXY) as urllib and requests read them: lower case wins."""
    proxies: dict[str, str] = {}
    no_proxy = ""
    for wanted_lower in (False, True):
        for name, value in environ.items():
            lower = name.lower()
            if (name == lower) != wanted_lower or not value or not lower.endswith("_proxy"):
                continue
            if lower == "no_proxy":
                no_proxy = value
            else:
                proxies[lower[: -len("_proxy")]] = value
    return proxies, no_proxy


def proxy_for(url: str, environ: Mapping[str, str]) -> str | None:
    """The proxy `url` goes through according to `environ`, or None to go direct."""
    from urllib.request import proxy_bypass_environment  # type: ignore[attr-defined]  # public, untyped

    proxies, no_proxy = _proxy_settings(environ)
    parts = urlsplit(url)
    host = parts.hostname or ""
    if no_proxy and proxy_bypass_environment(f"{host}:{parts.port}" if parts.port else host, {"no": no_proxy}):
        return None
    return proxies.get(parts.scheme) or proxies.get("all") or None


def ca_bundle(environ: Mapping[str, str]) -> str | None:
    """The CA file requests would use: the environment's choice, else certifi's, else None (the system's)."""
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        if environ.get(name):
            return environ[name]
    try:
        import certifi
    except ImportError:  # pragma: no cover - requests depends on certifi
        return None
    return str(certifi.where())


class Http:
    """Sends requests for one client; thread-safe (urllib3's pools are)."""

    def __init__(self, *, session: Any = None, environ: Mapping[str, str] | None = None, pool_maxsize: int = 64) -> None:
        self.session = session
        self._environ = os.environ if environ is None else environ
        self._pool_kw = {"maxsize": pool_maxsize, "block": False, "retries": False}
        self._direct: dict[str, Any] = {}  # origin -> its HTTP(S)ConnectionPool; one per provider host, kept
        self._proxied: dict[str, urllib3.PoolManager] = {}
        self._lock = threading.Lock()
        # url -> (what sends it, the URL to give that): a direct URL goes to its host's
        # connection pool with its path; a proxied one to the proxy's manager, whole. Found once.
        self._routes: dict[str, tuple[Any, str]] = {}

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
        for pool in self._direct.values():
            pool.close()
        for manager in self._proxied.values():
            manager.clear()

    def _route(self, url: str) -> tuple[Any, str]:
        route = self._routes.get(url)
        if route is None:
            with self._lock:  # first use of a URL only: two threads must not build two pools for it
                route = self._routes.get(url)
                if route is None:
                    route = self._routes[url] = self._find_route(url)
        return route

    def _find_route(self, url: str) -> tuple[Any, str]:
        kw: dict[str, Any] = dict(self._pool_kw)  # headers come with each request (see send)
        if url.startswith("https:"):
            kw["ca_certs"] = ca_bundle(self._environ)
        proxy = proxy_for(url, self._environ)
        if proxy is None:  # straight to the host's own pool: no URL parsing or pool lookup per request
            parts = urllib3.util.parse_url(url)
            origin = f"{parts.scheme}://{parts.netloc}"
            if origin not in self._direct:
                self._direct[origin] = urllib3.connection_from_url(origin, **kw)
            return self._direct[origin], parts.request_uri
        return self._proxy_manager(proxy, kw), url

    def _proxy_manager(self, proxy: str, kw: dict[str, Any]) -> urllib3.PoolManager:
        key = f"{proxy} {kw.get('ca_certs')}"
        if key not in self._proxied:
            if proxy.lower().startswith("socks"):
                try:
                    with warnings.catch_warnings():  # urllib3 warns, then raises: the error says it all
                        warnings.simplefilter("ignore")
                        from urllib3.contrib.socks import SOCKSProxyManager  # needs PySocks, as requests does
                except ImportError:
                    raise ProxyUnavailable("the environment names a SOCKS proxy, which needs PySocks "
                                           "(pip install pysocks)") from None
                self._proxied[key] = SOCKSProxyManager(proxy, num_pools=16, **kw)
            else:
                self._proxied[key] = urllib3.ProxyManager(proxy, num_pools=16, **kw)
        return self._proxied[key]

    def send(self, method: str, url: str, headers: Mapping[str, str], payload: Any, *,
             connect_timeout: float, read_timeout: float) -> Any:
        """Send one request and return its response with the body unread; `payload` is sent as
        JSON, or as it is when it is bytes (a multipart upload). Raises urllib3's
        (or requests') exceptions, and ValueError/UnicodeError for what cannot be sent."""
        body = None if payload is None else payload if isinstance(payload, bytes) else dumps(payload)
        if self.session is not None:
            return self._send_by_session(method, url, headers, body, connect_timeout, read_timeout)
        opener, where = self._route(url)
        return opener.urlopen(
            method, where, body=body, headers=dict(_DEFAULT_HEADERS, **headers), redirect=False, retries=False,
            preload_content=False, decode_content=True, assert_same_host=False,
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout))

    def _send_by_session(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None,
                         connect_timeout: float, read_timeout: float) -> Any:
        r = self.session.request(method, url, headers=dict(headers), data=body, timeout=(connect_timeout, read_timeout),
                                 stream=True, allow_redirects=False)
        raw = r.raw
        if hasattr(raw, "read1") and hasattr(raw, "release_conn"):
            return raw  # urllib3's response (status and headers included) under requests' wrapper
        try:  # a custom adapter's answer, taken as it gives it
            return Whole(r.status_code, r.headers, r.content)
        finally:
            r.close()
