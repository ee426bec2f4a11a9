"""HttpClientMixin: one HTTP client per connector, with retries, auth and timeouts.

Theory of operation: the requests go through the mesh's own HTTP layer
(`modelmesh.transports._http.Http`: urllib3 pools, the environment's proxies and CA bundle,
redirects never followed, or a `requests.Session` the caller passes), so a connector built
on the CDK reaches its provider exactly as the mesh's built-in ones do. Retries are
RetryMixin's (backoff with jitter on the injected clock); what is retried is a connection
failure, a timeout, and the statuses in `RETRYABLE_STATUS_CODES`, waiting at least what the
provider's Retry-After says (read by the core's rate-limit parser).

Errors are the mesh's own, mapped at this boundary: an error status raises the class the
OpenAI SDK would (`RateLimitError`, `InternalServerError`, ...; `status`, `retry_after` and
the response `body` attached), a refused or reset connection `APIConnectionError`, a timeout
`APITimeoutError`. The auth token lives in one private attribute and goes only into the
request headers: no message, repr or log line shows it, and URLs in messages lose their
query string (some vendors take keys there).

Streams: `_http_stream` yields the `data` of each Server-Sent Event, parsed by the core's
SSE parser (`iter_sse` does the same for a response you opened yourself).
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import urllib3

from ..._core._errors import APIConnectionError, APIStatusError, APITimeoutError, status_class
from ..._core._ratelimit import parse_retry_after
from ..._core._sse import SSEParser
from ...transports._http import Http
from ._base import seconds
from ._retry import RetryMixin

__all__ = ["HttpClientMixin", "iter_sse", "open_response", "read_all", "parse_json"]

_READ_SIZE = 64 * 1024


def _public(url: str) -> str:
    """`url` without its query and credentials: what an error message may show."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
    except ValueError:  # a port that is not a number
        return "<an unreadable URL>"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def iter_sse(response: Any) -> Iterator[str]:
    """The `data` of each Server-Sent Event in `response`'s body, as it arrives.

    `response` is anything with `read1(n)` (urllib3's response, `Http.send`'s) or `read(n)`
    (a file, `requests`' `response.raw`); it is released at the end."""
    reader = getattr(response, "read1", None) or getattr(response, "read", None)
    if reader is None:
        raise TypeError(f"iter_sse needs a response with read1() or read(), got {type(response).__name__}")
    parser = SSEParser()
    try:
        while True:
            chunk = reader(_READ_SIZE)
            if not chunk:
                break
            for event in parser.feed(chunk):
                yield event.data
        for event in parser.close():
            yield event.data
    finally:
        for name in ("release_conn", "close"):
            release = getattr(response, name, None)
            if release is not None:
                release()


class HttpClientMixin(RetryMixin):
    """Shared HTTP client with retries, timeouts and authorization header injection."""

    RETRYABLE_STATUS_CODES = frozenset({429, 500, 502, 503, 504})

    _http_client: Http | None = None
    _http_base_url: str = ""
    _http_auth_token: str | None = None  # the seed's name: set it before _init_http_client, or pass auth_token=
    _http_headers: dict[str, str]
    _http_timeout: float = 30.0
    _http_connect_timeout: float = 10.0

    def __init__(self, *, base_url: str | None = None, auth_token: str | None = None,
                 timeout: float | str = 30.0, connect_timeout: float | str = 10.0,
                 headers: Mapping[str, str] | None = None, auth_header: str = "Authorization",
                 auth_scheme: str = "Bearer", session: Any = None, environ: Mapping[str, str] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if base_url is not None:
            if auth_token is not None:
                self._http_auth_token = auth_token
            self._init_http_client(base_url, timeout=timeout, max_retries=self._retry_max, headers=headers,
                                   connect_timeout=connect_timeout, auth_header=auth_header,
                                   auth_scheme=auth_scheme, session=session, environ=environ)
        elif auth_token is not None:
            raise ValueError("auth_token was given without base_url: pass both, or call _init_http_client")

    def _init_http_client(self, base_url: str, timeout: float | str = 30.0, max_retries: int = 3,
                          headers: Mapping[str, str] | None = None, *, connect_timeout: float | str = 10.0,
                          auth_header: str = "Authorization", auth_scheme: str = "Bearer",
                          session: Any = None, environ: Mapping[str, str] | None = None) -> None:
        """Create the client: every request goes to `base_url` + path with `headers` and the
        auth header (`{auth_header}: {auth_scheme} {token}`) when a token is set."""
        if not isinstance(base_url, str) or urlsplit(base_url).scheme not in ("http", "https") \
                or not urlsplit(base_url).hostname:
            shown = repr(_public(base_url)) if isinstance(base_url, str) else f"a {type(base_url).__name__}"
            raise ValueError(f"base_url must be an http(s) URL with a host, got {shown}")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be a whole number, zero or more, got {max_retries!r}")
        token = self._http_auth_token
        if token is not None and (not isinstance(token, str) or not token or "\n" in token or "\r" in token):
            raise ValueError("the auth token must be a non-empty one-line str")  # the value is never shown
        self._close_http_client()
        self._http_base_url = base_url.rstrip("/")
        self._http_timeout = seconds("timeout", timeout, positive=True)
        self._http_connect_timeout = min(seconds("connect_timeout", connect_timeout, positive=True),
                                         self._http_timeout)
        self._retry_max = max_retries
        self._http_headers = {"Accept": "application/json", **dict(headers or {})}
        if token:
            self._http_headers[auth_header] = f"{auth_scheme} {token}".strip()
        self._http_client = Http(session=session, environ=environ)

    def _close_http_client(self) -> None:
        """Close the client and release its connection pools."""
        client, self._http_client = self._http_client, None
        if client is not None:
            client.close()

    # -- requests --------------------------------------------------------------------------
    def _http_get(self, path: str, **kwargs: Any) -> Any:
        """GET base_url + path; the parsed JSON body."""
        return self._http_request("GET", path, **kwargs)

    def _http_post(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        """POST a JSON body to base_url + path; the parsed JSON body."""
        return self._http_request("POST", path, json=json, **kwargs)

    def _http_request(self, method: str, path: str, *, json: Any = None,
                      headers: Mapping[str, str] | None = None, timeout: float | str | None = None) -> Any:
        """One request, retried on transient failures; the parsed JSON body (None when empty)."""
        def attempt() -> Any:
            body = read_all(self._http_open(method, path, json, headers, timeout))
            return parse_json(body, method, self._http_url(path))
        return self._retry(attempt, retry_on=self._http_retryable)

    def _http_stream(self, path: str, json: Any = None, *, method: str = "POST",
                     headers: Mapping[str, str] | None = None, timeout: float | str | None = None) -> Iterator[str]:
        """Send the request (retrying until the stream opens) and yield each SSE event's data."""
        wanted = {"Accept": "text/event-stream", **dict(headers or {})}
        response = self._retry(self._http_open, method, path, json, wanted, timeout, retry_on=self._http_retryable)
        yield from iter_sse(response)

    def _http_retryable(self, exc: BaseException) -> bool:
        if isinstance(exc, APIConnectionError):  # timeouts included
            return True
        return isinstance(exc, APIStatusError) and exc.status in self.RETRYABLE_STATUS_CODES

    def _http_url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self._http_base_url}/{path.lstrip('/')}" if path else self._http_base_url

    def _http_open(self, method: str, path: str, payload: Any, headers: Mapping[str, str] | None,
                   timeout: float | str | None) -> Any:
        """Send once; the response with its body unread, or the mapped error for an error status."""
        client = self._http_client
        if client is None:
            raise RuntimeError(f"{type(self).__name__}: call _init_http_client(base_url, ...) "
                               "(or pass base_url=) before making requests")
        url = self._http_url(path)
        read = self._http_timeout if timeout is None else seconds("timeout", timeout, positive=True)
        sent = dict(self._http_headers)
        if payload is not None:
            sent["Content-Type"] = "application/json"
        sent.update(headers or {})
        return open_response(client, method, url, sent, payload,
                             connect_timeout=min(self._http_connect_timeout, read), read_timeout=read)


def open_response(client: Http, method: str, url: str, headers: Mapping[str, str], payload: Any, *,
                  connect_timeout: float, read_timeout: float) -> Any:
    """Send once through `client`; the response with its body unread, or the mesh's error
    for an error status (`status`, `retry_after` and the `response_body` attached), a
    timeout (APITimeoutError) or a failed connection (APIConnectionError). Messages show
    the URL without its query."""
    try:
        response = client.send(method, url, headers, payload, connect_timeout=connect_timeout,
                               read_timeout=read_timeout)
    except (urllib3.exceptions.TimeoutError, TimeoutError):
        raise APITimeoutError(f"{method} {_public(url)}: no answer within {read_timeout:g}s") from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise APIConnectionError(f"{method} {_public(url)}: connection failed ({type(exc).__name__})") from None
    if response.status >= 400:
        body = read_all(response)
        # an HTTP-date Retry-After is wall-clock time, whatever clock the caller was given
        raise _status_error(method, url, response.status, response.headers, body, time.time())
    return response


def read_all(response: Any) -> bytes:
    """The whole body of an `Http.send` response (urllib3's, or a requests adapter's `Whole`), released."""
    parts: list[bytes] = []
    try:
        while True:
            chunk = response.read1(_READ_SIZE)
            if not chunk:
                return b"".join(parts)
            parts.append(chunk)
    finally:
        response.release_conn()


def _status_error(method: str, url: str, status: int, headers: Mapping[str, str], body: bytes,
                  now: float) -> APIStatusError:
    cls = status_class(status)
    error = cls(f"{method} {_public(url)} answered {status}", status=status,
                retry_after=parse_retry_after(dict(headers), now))
    error.response_body = body  # type: ignore[attr-defined]  # for the connector's own error parsing
    error.response_headers = dict(headers)  # type: ignore[attr-defined]
    return error


def parse_json(body: bytes, method: str, url: str) -> Any:
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except ValueError:
        raise APIStatusError(f"{method} {_public(url)}: the answer is not JSON", status=200,
                             status_code=502) from None
