"""OpenAI's wire format for what the mesh answers: routes, bodies, SSE and error bodies.

Theory of operation: everything here is a pure function over str, bytes, dicts and
iterators; it imports neither openai nor httpx and does no I/O, so the two front doors
that speak OpenAI's HTTP API share it: `modelmesh.openai` (an httpx transport under the
real SDK) and the OpenAI-compatible proxy. A front door parses the path with `route`,
sends the body through the mesh, and writes back one of three things:

- a result: `encode_json(body)` with `served_headers(...)` (who served it);
- a stream: `sse_stream(chunks)` yields `data: {chunk}\\n\\n` lazily, then `data: [DONE]\\n\\n`;
  a ModelMeshError raised while the chunks are pulled becomes one `data: {"error": ...}`
  event (what OpenAI sends mid-stream) and the stream ends there;
- an error: `wire_error(exc)` gives the HTTP status, the `{"error": {...}}` body and the
  headers; `no_answer(exc)` says when no upstream answered at all (every attempt refused
  or timed out), which an HTTP client reports as a connection failure, not a status.

`error_status` is the one place that decides an error's HTTP status.
"""
from __future__ import annotations

import base64
import json
import math
import struct
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from ._core import _errors as E

__all__ = [
    "Route", "route", "encode_json", "served_headers", "sse_event", "sse_stream", "DONE",
    "WireError", "error_status", "error_body", "wire_error", "unknown_route", "invalid_body", "no_answer",
    "embeddings_request", "embeddings_body", "find_model", "model_not_found",
]

DONE = b"data: [DONE]\n\n"
JSON = "application/json"
EVENT_STREAM = "text/event-stream; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Route:
    """An OpenAI API path the mesh serves: `op` is "chat", "embeddings", "models" or "model"
    (one model, `model_id` unquoted: `provider/model-id` arrives as `provider%2Fmodel-id`)."""

    op: str
    model_id: str | None = None


def route(method: str, path: str) -> Route | None:
    """The route of `method path`, the path relative to the API's base (`/chat/completions`);
    None for any other endpoint."""
    path = path.rstrip("/") or "/"
    if method == "POST" and path == "/chat/completions":
        return Route("chat")
    if method == "POST" and path == "/embeddings":
        return Route("embeddings")
    if method == "GET" and path == "/models":
        return Route("models")
    if method == "GET" and path.startswith("/models/") and len(path) > 8:
        return Route("model", unquote(path[8:]))
    return None


def encode_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def served_headers(*, provider: str, model: str, attempts: int, request_id: str, pool: str | None = None,
                   content_type: str = JSON) -> list[tuple[str, str]]:
    """Who served a response: the provider, its model id, how many attempts it took."""
    headers = [("content-type", content_type), ("x-request-id", request_id), ("x-modelmesh-provider", provider),
               ("x-modelmesh-model", model), ("x-modelmesh-attempts", str(attempts))]
    if pool:
        headers.append(("x-modelmesh-pool", pool))
    return headers


# -- streams -----------------------------------------------------------------------------------
def sse_event(obj: Mapping[str, Any]) -> bytes:
    return b"data: " + encode_json(obj) + b"\n\n"


def sse_stream(chunks: Iterable[Mapping[str, Any]]) -> Iterator[bytes]:
    """Each chunk as an SSE event, pulled one at a time, then `[DONE]`. A ModelMeshError
    raised by `chunks` (the stream broke after content was delivered) is sent as OpenAI's
    mid-stream error event, and no `[DONE]` follows."""
    try:
        for chunk in chunks:
            yield sse_event(chunk)
    except E.ModelMeshError as exc:
        yield sse_event(error_body(exc))
        return
    yield DONE


# -- errors ------------------------------------------------------------------------------------
# Until every ModelMeshError carries `status_code`, the status of the errors that carry none
# (or carry a non-HTTP one), by class: the first match wins, so subclasses come first.
_STATUS_BY_CLASS: tuple[tuple[type[E.ModelMeshError], int], ...] = (
    (E.BudgetExceededError, 429),      # our own spend limit: what OpenAI says when the quota is spent
    (E.NoModelAvailableError, 503),    # every model on standby: come back after Retry-After
    (E.BadRequestError, 400),
    (E.AuthenticationError, 401),
    (E.RateLimitError, 429),
    (E.RequestTimeoutError, 504),      # the upstreams did not answer in time: a gateway timeout
    (E.ContentFilteredError, 400),
    (E.StreamInterruptedError, 502),
    (E.ProviderError, 502),            # an upstream answered with an error we could not get around
    (E.ConfigurationError, 500),
    (E.InternalError, 500),
    (E.RoutingError, 404),             # an unknown pool, capability or model: OpenAI's model_not_found
)
_CODE_BY_CLASS: tuple[tuple[type[E.ModelMeshError], str], ...] = (
    (E.BudgetExceededError, "insufficient_quota"),
    (E.NoModelAvailableError, "no_model_available"),
    (E.ContextLengthError, "context_length_exceeded"),
    (E.ContentFilteredError, "content_filter"),
    (E.RateLimitError, "rate_limit_exceeded"),
)


def error_status(exc: BaseException) -> int:
    """The HTTP status an error is answered with: its own (`status_code`, else the upstream's
    `status`) when that is an HTTP error status, else the one of its class."""
    for status in (getattr(exc, "status_code", None), getattr(exc, "status", None)):
        if isinstance(status, int) and not isinstance(status, bool) and 400 <= status <= 599:
            return status
    for cls, status in _STATUS_BY_CLASS:
        if isinstance(exc, cls):
            return status
    return 500


def _type_for(status: int, code: str | None) -> str:
    # the `type` values OpenAI itself uses for these answers
    if code == "insufficient_quota":
        return "insufficient_quota"
    if status == 429:
        return "requests"
    return "server_error" if status >= 500 else "invalid_request_error"


def _code_for(exc: BaseException, status: int) -> str | None:
    code = getattr(exc, "code", None)
    if isinstance(code, str) and code:
        return code
    for cls, name in _CODE_BY_CLASS:
        if isinstance(exc, cls):
            return name
    if status == 404 and isinstance(exc, E.RoutingError):
        return "model_not_found"
    return None


def error_body(exc: BaseException, status: int | None = None) -> dict[str, Any]:
    """OpenAI's error body for `exc`. Its message is the error's text, attempts included;
    ModelMeshError messages are redacted where they are made, so no secret reaches here."""
    status = error_status(exc) if status is None else status
    code = _code_for(exc, status)
    kind = getattr(exc, "type", None)
    param = getattr(exc, "param", None)
    return {"error": {"message": str(exc), "type": kind if isinstance(kind, str) and kind else _type_for(status, code),
                      "param": param if isinstance(param, str) else None, "code": code}}


@dataclass(frozen=True, slots=True)
class WireError:
    status: int
    body: bytes
    headers: list[tuple[str, str]]


def wire_error(exc: BaseException) -> WireError:
    """The HTTP answer for `exc`: status, JSON error body, and the headers that say what was
    tried (`x-modelmesh-attempts`; the provider and model of the error, else of the last
    attempt) and when to come back (`retry-after`)."""
    status = error_status(exc)
    headers = [("content-type", JSON)]
    request_id = getattr(exc, "request_id", None)
    if isinstance(request_id, str) and request_id:
        headers.append(("x-request-id", request_id))
    attempts = getattr(exc, "attempts", ())
    headers.append(("x-modelmesh-attempts", str(len(attempts))))
    last = attempts[-1] if attempts else None  # the error's own provider, else the last one tried
    for name, value in (("x-modelmesh-provider", getattr(exc, "provider", None) or getattr(last, "provider", None)),
                        ("x-modelmesh-model", getattr(exc, "model", None) or getattr(last, "model", None))):
        if isinstance(value, str) and value:
            headers.append((name, value))
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(retry_after, (int, float)) and not isinstance(retry_after, bool) and math.isfinite(retry_after):
        headers.append(("retry-after", str(max(0, math.ceil(retry_after)))))
    return WireError(status=status, body=encode_json(error_body(exc, status)), headers=headers)


def no_answer(exc: BaseException) -> str | None:
    """"timeout" or "connection" when no upstream answered at all (every attempt timed out,
    or was refused or cut before a status line), else None: an HTTP client reports those as
    its own timeout or connection error rather than as a status from the server."""
    attempts = getattr(exc, "attempts", ())
    if not attempts or any(a.status is not None for a in attempts):
        return None
    outcomes = {a.outcome for a in attempts}
    if outcomes == {"timeout"}:
        return "timeout"
    if outcomes <= {"timeout", "connection"}:
        return "connection"
    return None


def _simple(status: int, message: str, code: str | None, param: str | None = None) -> WireError:
    body = {"error": {"message": message, "type": _type_for(status, code), "param": param, "code": code}}
    return WireError(status=status, body=encode_json(body), headers=[("content-type", JSON)])


def unknown_route(method: str, path: str) -> WireError:
    """An endpoint the mesh does not serve; the words OpenAI uses for a URL it does not know."""
    return _simple(404, f"Invalid URL ({method} {path}): the mesh serves POST /chat/completions, "
                        "POST /embeddings, GET /models and GET /models/{model}", "unknown_url")


def invalid_body(reason: str, param: str | None = None) -> WireError:
    return _simple(400, reason, None if param is None else "missing_required_parameter", param)


def model_not_found(model_id: str) -> WireError:
    return _simple(404, f"The model '{model_id}' is neither a pool nor a configured model of this mesh",
                   "model_not_found")


# -- bodies ------------------------------------------------------------------------------------
def embeddings_request(body: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """(the body to send through the mesh, the encoding the caller asked for). Base64 (what
    the openai SDK asks for by default) is made here from floats, so providers are asked for
    their default floats: not every provider knows `encoding_format` (Gemini refuses base64)."""
    wanted = body.get("encoding_format")
    if wanted == "base64":
        return {k: v for k, v in body.items() if k != "encoding_format"}, wanted
    return body, wanted


def embeddings_body(response: dict[str, Any], encoding_format: Any) -> dict[str, Any]:
    """The embeddings response in the encoding the caller asked for: floats become base64
    (little-endian float32, as OpenAI encodes them) when "base64" was asked."""
    if encoding_format != "base64":
        return response
    data = response.get("data")
    if not isinstance(data, list) or not any(isinstance(d, dict) and isinstance(d.get("embedding"), list) for d in data):
        return response
    out = []
    for item in data:
        vector = item.get("embedding") if isinstance(item, dict) else None
        if isinstance(vector, list):
            item = dict(item, embedding=base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii"))
        out.append(item)
    return dict(response, data=out)


def find_model(listing: Mapping[str, Any], model_id: str) -> dict[str, Any] | None:
    """The model object with `model_id` in a models page, or None."""
    for item in listing.get("data") or ():
        if isinstance(item, dict) and item.get("id") == model_id:
            return item
    return None
