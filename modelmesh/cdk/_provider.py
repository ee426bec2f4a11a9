"""`BaseProvider`: a provider connector that does its own I/O (seed 003's first example).

Theory of operation. Most connectors are codecs: the shell sends what they build. A
`BaseProvider` sends its requests itself: override `complete(request)` (and `stream`, if
the service streams) and everything else is inherited: capabilities, catalogue and prices
from configuration, error classification (`classify_exception`), health checks (`check`: a
one-token completion) and model listings (`list_models`: none). The core still decides
everything: which model, retries, failover, standbys, budgets. The shell calls the
connector's methods where it would send a request (in a worker thread under asyncio) and
feeds what came back to the core as the same inputs the built-in shell feeds
(ResultReceived, ChunkReceived, ErrorReceived), so recording and replay see them too.

`CompletionRequest` is what `complete` and `stream` are given: the OpenAI-shaped body with
`model` set to the provider's id for the model, where to send it (`base_url`, `api_key`,
`headers`), its time (`timeout`) and small HTTP helpers (`post`, `get`, `stream_events`)
that send with the provider's auth header through the mesh's own HTTP layer (environment
proxies, CA bundle, no redirects followed). A connector may use any client it likes
instead; what it raises is classified by `classify_exception`.

Time: the core's timeouts cannot interrupt a connector's own call; they are handed to it
(`request.timeout` for the answer, or a stream's first item; `request.connect_timeout`) and
the helpers honour them. A stream's total time is checked between its items.
"""
from __future__ import annotations

import abc
import dataclasses
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

from .._core._errors import APIConnectionError, APIStatusError, APITimeoutError
from .._core._protocol import ChunkReceived, ErrorReceived, ResultReceived, StreamEnded, StreamOpened
from .._core._types import ConnectorCall, ErrorInfo, ErrorKind
from .._core.codecs._base import CodecError, clean_message
from .._core.codecs.connector import ConnectorCodec

__all__ = ["BaseProvider", "CompletionRequest", "CompletionResponse", "TokenUsage"]

_PING = [{"role": "user", "content": "ping"}]


@dataclasses.dataclass
class TokenUsage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int | None = None  # None: the sum of the two


@dataclasses.dataclass
class CompletionResponse:
    """What `complete` may return instead of a chat.completion dict: the choices may be the
    short form `[{"message": {"content": "..."}}]`; the rest is filled in."""

    choices: list[Any]
    id: str = "chatcmpl-connector"
    model: str | None = None
    usage: TokenUsage | Mapping[str, Any] | None = None
    created: int = 0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "object": "chat.completion", "created": self.created,
                               "choices": list(self.choices)}
        if self.model is not None:
            out["model"] = self.model
        usage = self.usage
        if isinstance(usage, TokenUsage):
            usage = {k: v for k, v in dataclasses.asdict(usage).items() if v is not None}
        if usage is not None:
            out["usage"] = dict(usage)
        return out


class CompletionRequest:
    """One attempt, as a connector with its own I/O sees it. Read-only; never shows the key."""

    __slots__ = ("_call", "_provider", "timeout", "connect_timeout")

    def __init__(self, call: ConnectorCall, provider: BaseProvider, timeout: float, connect_timeout: float) -> None:
        self._call = call
        self._provider = provider
        self.timeout = timeout                   # seconds for the answer (a stream: its first item)
        self.connect_timeout = connect_timeout

    def __repr__(self) -> str:
        return f"CompletionRequest(op={self.op!r}, model={self.model!r}, stream={self.stream})"

    # -- what is asked ---------------------------------------------------------------------
    @property
    def body(self) -> dict[str, Any]:
        """The OpenAI-shaped request (a copy), `model` the provider's id for the model."""
        return dict(self._call.body)

    @property
    def op(self) -> str:
        return self._call.op

    @property
    def model(self) -> str:
        return str(self._call.target.model)

    @property
    def messages(self) -> list[Any]:
        return list(self._call.body.get("messages") or [])

    @property
    def max_tokens(self) -> int | None:
        body = self._call.body
        value = body.get("max_completion_tokens", body.get("max_tokens"))
        return value if isinstance(value, int) else None

    @property
    def stream(self) -> bool:
        return self._call.stream

    # -- where it goes -----------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return str(self._call.target.base_url or self._provider.default_base_url or "")

    @property
    def api_key(self) -> str | None:
        return self._call.target.api_key

    @property
    def headers(self) -> dict[str, str]:
        """The provider's configured headers, then the caller's extra ones."""
        return {**self._call.target.headers, **self._call.headers}

    @property
    def query(self) -> dict[str, str]:
        return dict(self._call.query)

    @property
    def options(self) -> dict[str, Any]:
        """The provider's `options` from configuration."""
        return dict(self._call.target.options)

    # -- HTTP helpers ---------------------------------------------------------------------------
    def post(self, path: str, json: Any = None, *, headers: Mapping[str, str] | None = None) -> Any:
        """POST `json` to base_url + path with the provider's auth; the parsed JSON answer."""
        return self._provider._send(self, "POST", path, json, headers)

    def get(self, path: str, *, headers: Mapping[str, str] | None = None) -> Any:
        return self._provider._send(self, "GET", path, None, headers)

    def stream_events(self, path: str, json: Any = None, *, headers: Mapping[str, str] | None = None) -> Iterator[str]:
        """POST and yield the `data` of each Server-Sent Event of the answer."""
        return self._provider._events(self, path, json, headers)


class BaseProvider(ConnectorCodec):
    """Override `complete` (and `stream` for a service that streams); the rest is inherited.
    Use it from configuration as `connector: "my_package.module:MyProvider"`."""

    name = "custom"
    auth_header = "Authorization"
    auth_scheme = "Bearer"  # "" sends the bare key

    _http: Any = None  # the helpers' connection pools, made on first use
    _http_lock = threading.Lock()

    # -- what a subclass overrides --------------------------------------------------------------
    @abc.abstractmethod
    def complete(self, request: CompletionRequest) -> Mapping[str, Any] | CompletionResponse:
        """Answer `request`: a chat.completion dict (the short form will do) or a CompletionResponse."""

    def stream(self, request: CompletionRequest) -> Iterator[Mapping[str, Any] | str]:
        """Yield the answer as chat.completion.chunk dicts or pieces of text. By default the
        whole answer of `complete`, as one piece: a service that cannot stream still serves
        streaming requests."""
        result = self.parse_result(request._call.target, request.op, _plain(self.complete(request)))
        for choice in result["choices"]:
            message = choice.get("message") or {}
            delta = {k: v for k, v in message.items() if v is not None}
            if isinstance(delta.get("tool_calls"), list):
                delta["tool_calls"] = [{"index": i, **c} for i, c in enumerate(delta["tool_calls"])]
            yield {"id": result["id"], "model": result["model"], "created": result["created"],
                   "choices": [{"index": choice["index"], "delta": delta, "finish_reason": choice["finish_reason"]}]}
        if result.get("usage"):
            yield {"id": result["id"], "model": result["model"], "created": result["created"], "choices": [],
                   "usage": result["usage"]}

    def check(self, request: CompletionRequest) -> bool:
        """A health check: True when the service answers. By default a one-token completion
        (`request` is a model's check, or the provider's, which asks for a ping)."""
        self.complete(request)
        return True

    def list_models(self, request: CompletionRequest) -> list[str] | None:
        """The service's model ids, for the registry sync; None: it lists none."""
        return None

    def classify_exception(self, exc: BaseException) -> ErrorInfo:
        """What a failure `complete` or `stream` raised means: an HTTP error status is
        classified as for any connector (`_classify_payload`, Retry-After); a timeout, a
        failed connection and a CodecError say so; anything else is a malformed answer from
        this provider (its model is blamed, the request fails over)."""
        if isinstance(exc, CodecError):
            return exc.info
        status, headers, body, retry_after = _status_of(exc)
        if status is not None:
            info = self.classify_error(status, headers, body, now=time.time())
            if info.retry_after is None and retry_after is not None:
                info = dataclasses.replace(info, retry_after=retry_after)
            return info
        names = {c.__name__ for c in type(exc).__mro__}
        if isinstance(exc, (APITimeoutError, TimeoutError)) or any("Timeout" in n for n in names):
            return ErrorInfo(kind=ErrorKind.TIMEOUT, message=clean_message(str(exc) or type(exc).__name__))
        if isinstance(exc, (APIConnectionError, ConnectionError, OSError)) or any("Connect" in n for n in names):
            return ErrorInfo(kind=ErrorKind.CONNECTION, message=clean_message(str(exc) or type(exc).__name__))
        return ErrorInfo(kind=ErrorKind.MALFORMED,
                         message=clean_message(f"{type(self).__name__} raised {type(exc).__name__}: {exc}"))

    def close(self) -> None:
        """Release the helpers' connection pools."""
        with self._http_lock:
            http, self._http = self._http, None  # (an instance attribute from here on)
        if http is not None:
            http.close()

    # -- what the shells call (through Blocking: a worker thread under asyncio) ----------------
    def _mesh_complete(self, call: ConnectorCall, timeout: float, connect_timeout: float) -> Any:
        request = CompletionRequest(call, self, timeout, connect_timeout)
        try:
            return ResultReceived(response=_plain(self.complete(request)))
        except Exception as exc:
            return ErrorReceived(info=self._classified(exc))

    def _mesh_open(self, call: ConnectorCall, timeout: float, connect_timeout: float) -> tuple[Any, Any]:
        request = CompletionRequest(call, self, timeout, connect_timeout)
        try:
            return iter(self.stream(request)), StreamOpened()
        except Exception as exc:
            return None, ErrorReceived(info=self._classified(exc))

    def _mesh_next(self, items: Iterator[Any]) -> Any:
        try:
            return ChunkReceived(chunk=_plain(next(items)))
        except StopIteration:
            return StreamEnded()
        except Exception as exc:
            return ErrorReceived(info=self._classified(exc))

    @staticmethod
    def _mesh_close(items: Iterator[Any]) -> None:
        close = getattr(items, "close", None)
        if close is not None:
            close()

    def _mesh_check(self, call: ConnectorCall, timeout: float) -> bool:
        if call.op == "models":  # the provider's own check: a ping on its first model
            call = dataclasses.replace(call, op="chat", body={"model": call.target.model, "messages": _PING,
                                                              "max_tokens": 1})
        return bool(self.check(CompletionRequest(call, self, timeout, timeout)))

    def _mesh_list(self, call: ConnectorCall, timeout: float) -> list[str] | None:
        ids = self.list_models(CompletionRequest(call, self, timeout, timeout))
        return None if ids is None else [str(i) for i in ids]

    def _classified(self, exc: Exception) -> ErrorInfo:
        try:
            info = self.classify_exception(exc)
        except Exception as inner:  # a classifier's own bug: the failure is still the provider's
            info = ErrorInfo(kind=ErrorKind.MALFORMED, message=f"{type(self).__name__}.classify_exception raised "
                                                               f"{type(inner).__name__}")
        if not isinstance(info, ErrorInfo):
            info = ErrorInfo(kind=ErrorKind.MALFORMED, message=f"{type(self).__name__}.classify_exception returned "
                                                               f"a {type(info).__name__}, not an ErrorInfo")
        return info

    # -- the helpers' HTTP ----------------------------------------------------------------------
    def _client(self) -> Any:
        with self._http_lock:
            if self._http is None:
                from ..transports._http import Http

                self._http = Http()
            return self._http

    def _prepared(self, request: CompletionRequest, path: str, payload: Any,
                  headers: Mapping[str, str] | None, accept: str) -> tuple[str, dict[str, str]]:
        base = request.base_url.rstrip("/")
        if not base and not path.startswith(("http://", "https://")):
            raise CodecError.of(ErrorKind.MISCONFIGURED, f"{type(self).__name__}: the provider has no base_url")
        url = path if path.startswith(("http://", "https://")) else f"{base}/{path.lstrip('/')}"
        if request.query:
            from urllib.parse import urlencode

            url += ("&" if "?" in url else "?") + urlencode(request.query)
        sent = {"Accept": accept}
        if request.api_key:
            sent[self.auth_header] = f"{self.auth_scheme} {request.api_key}".strip()
        if payload is not None:
            sent["Content-Type"] = "application/json"
        sent.update(request.headers)
        sent.update(headers or {})
        return url, sent

    def _send(self, request: CompletionRequest, method: str, path: str, payload: Any,
              headers: Mapping[str, str] | None) -> Any:
        from .mixins._http import open_response, parse_json, read_all

        url, sent = self._prepared(request, path, payload, headers, "application/json")
        response = open_response(self._client(), method, url, sent, payload,
                                 connect_timeout=min(request.connect_timeout, request.timeout),
                                 read_timeout=request.timeout)
        return parse_json(read_all(response), method, url)

    def _events(self, request: CompletionRequest, path: str, payload: Any,
                headers: Mapping[str, str] | None) -> Iterator[str]:
        from .mixins._http import iter_sse, open_response

        url, sent = self._prepared(request, path, payload, headers, "text/event-stream")
        response = open_response(self._client(), "POST", url, sent, payload,
                                 connect_timeout=min(request.connect_timeout, request.timeout),
                                 read_timeout=request.timeout)
        yield from iter_sse(response)


def _plain(value: Any) -> Any:
    """A CompletionResponse (or any dataclass, or an object with `to_dict`) as plain data."""
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict) and not isinstance(value, type):
        return to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


def _status_of(exc: BaseException) -> tuple[int | None, dict[str, str], bytes, float | None]:
    """(status, headers, body, retry_after) of an HTTP error: the mesh's own (from the helpers
    and HttpClientMixin), requests' HTTPError, httpx's HTTPStatusError; status None otherwise."""
    if isinstance(exc, APIStatusError) and exc.status is not None:
        return (exc.status, dict(getattr(exc, "response_headers", None) or {}),
                bytes(getattr(exc, "response_body", b"") or b""), exc.retry_after)
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if isinstance(status, int) and not isinstance(exc, APIStatusError):
        body = getattr(response, "content", b"")
        return status, dict(getattr(response, "headers", None) or {}), body if isinstance(body, bytes) else b"", None
    return None, {}, b"", None
