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
  headers; `no_answer(exc)` says when no upstream answered at all (APIConnectionError,
  APITimeoutError), which an HTTP client reports as a connection failure, not a status.

The error hierarchy (`_core/_errors.py`) decides each error's status, code and type; this
module only writes them down, with `error_status` the one place that answers for errors
that have no HTTP status of their own.
"""
from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from ._core import _errors as E

__all__ = [
    "Route", "route", "encode_json", "served_headers", "sse_event", "sse_stream", "DONE",
    "WireError", "error", "error_status", "error_body", "wire_error", "unknown_route", "invalid_body", "no_answer",
    "method_not_allowed", "missing_key", "wrong_key", "forbidden", "too_large", "unsupported_media_type",
    "allowed_methods", "MULTIPART_OPS", "transcript_body", "TRANSCRIPTION_FORMATS",
    "embeddings_request", "embeddings_body", "find_model", "model_not_found", "INFRA_OPS", "PROVIDER_HEADER",
]

DONE = b"data: [DONE]\n\n"
JSON = "application/json"
EVENT_STREAM = "text/event-stream; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Route:
    """An OpenAI API path the mesh serves: `op` is "chat", "embeddings", one of the audio and
    image operations (`_POSTS`), "models" or "model" (one model, `model_id` unquoted:
    `provider/model-id` arrives as `provider%2Fmodel-id`), or one of the files and
    fine-tuning operations (`INFRA_OPS`; `ident` the file or job id in the path)."""

    op: str
    model_id: str | None = None
    ident: str | None = None


# the POST endpoints and the mesh operation each is; the ops in MULTIPART_OPS take multipart/form-data
_POSTS = {"/chat/completions": "chat", "/embeddings": "embeddings", "/audio/speech": "speech",
          "/audio/transcriptions": "transcriptions", "/audio/translations": "translations",
          "/images/generations": "images", "/images/edits": "image_edits"}
MULTIPART_OPS = frozenset({"transcriptions", "translations", "image_edits", "files_create"})
# files and fine-tuning: (method, path pattern) -> op; `{id}` is one path segment
_INFRA = {("POST", "/files"): "files_create", ("GET", "/files"): "files_list",
          ("GET", "/files/{id}"): "files_retrieve", ("DELETE", "/files/{id}"): "files_delete",
          ("GET", "/files/{id}/content"): "files_content",
          ("POST", "/fine_tuning/jobs"): "jobs_create", ("GET", "/fine_tuning/jobs"): "jobs_list",
          ("GET", "/fine_tuning/jobs/{id}"): "jobs_retrieve", ("POST", "/fine_tuning/jobs/{id}/cancel"): "jobs_cancel"}
INFRA_OPS = frozenset(_INFRA.values())
# the header (or a JSON body's / form's `provider` field) naming the provider of a files or fine-tuning call
PROVIDER_HEADER = "x-modelmesh-provider"


def _infra_shape(path: str) -> tuple[str, str | None] | None:
    """(the pattern of `_INFRA` a path has, its id) or None."""
    parts = path.strip("/").split("/")
    if parts[:1] == ["files"]:
        head = 1
    elif parts[:2] == ["fine_tuning", "jobs"]:
        head = 2
    else:
        return None
    rest = parts[head:]
    base = "/" + "/".join(parts[:head])
    if not rest:
        return base, None
    if not rest[0] or len(rest) > 2 or (len(rest) == 2 and rest[1] not in ("content", "cancel")):
        return None
    return base + "/{id}" + ("/" + rest[1] if len(rest) == 2 else ""), unquote(rest[0])


def route(method: str, path: str) -> Route | None:
    """The route of `method path`, the path relative to the API's base (`/chat/completions`);
    None for any other endpoint."""
    path = path.rstrip("/") or "/"
    if method == "POST" and path in _POSTS:
        return Route(_POSTS[path])
    if method == "GET" and path == "/models":
        return Route("models")
    if method == "GET" and path.startswith("/models/") and len(path) > 8:
        return Route("model", unquote(path[8:]))
    shape = _infra_shape(path)
    if shape is not None and (method, shape[0]) in _INFRA:
        return Route(_INFRA[(method, shape[0])], ident=shape[1])
    return None


def allowed_methods(path: str) -> str | None:
    """The method a served path takes ("POST" or "GET"), for a 405 that says so; None for a
    path no method serves."""
    path = path.rstrip("/") or "/"
    if path in _POSTS:
        return "POST"
    if path == "/models" or (path.startswith("/models/") and len(path) > 8):
        return "GET"
    shape = _infra_shape(path)
    methods = [m for m, p in _INFRA if shape is not None and p == shape[0]]
    return ", ".join(methods) if methods else None


def encode_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def served_headers(*, provider: str, model: str, attempts: int, request_id: str, pool: str | None = None,
                   content_type: str = JSON) -> list[tuple[str, str]]:
    """Who served a response: the provider, its model id, how many attempts it took (the
    names are the error responses' too: `mesh_headers` makes both)."""
    named = E.mesh_headers(request_id=request_id, provider=provider, model=model, attempts=attempts, pool=pool)
    return [("content-type", content_type), *named.items()]


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


# -- errors ----------------------------------------------------------------------------------------
# Errors with an HTTP status (APIStatusError) carry it as `status_code`, with their OpenAI body
# (`body`) and headers (`response.headers`). The others never came from an upstream's status:
# what a server answers for them.
_STATUS_BY_CLASS: tuple[tuple[type[E.ModelMeshError], int], ...] = (
    (E.APITimeoutError, 504),          # the upstreams did not answer in time: a gateway timeout
    (E.APIConnectionError, 502),       # no upstream answered: a bad gateway
    (E.StreamInterruptedError, 502),   # the upstream broke its stream
)


def error_status(exc: BaseException) -> int:
    """The HTTP status an error is answered with: its `status_code` when it has one (every
    APIStatusError does), else the status of its class (500 for a bug or anything else)."""
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and not isinstance(status, bool) and 400 <= status <= 599:
        return status
    for cls, fallback in _STATUS_BY_CLASS:
        if isinstance(exc, cls):
            return fallback
    return 500


def error_body(exc: BaseException) -> dict[str, Any]:
    """OpenAI's error body for `exc`: `message` is the error's text with its attempts
    (ModelMeshError messages are redacted where they are made, so no secret reaches here);
    `type`, `param` and `code` are the error's own."""
    fields = {name: getattr(exc, name, None) for name in ("type", "param", "code")}
    kind = fields["type"] if isinstance(fields["type"], str) and fields["type"] else _type_for(error_status(exc))
    return {"error": {"message": str(exc), "type": kind,
                      "param": fields["param"] if isinstance(fields["param"], str) else None,
                      "code": fields["code"] if isinstance(fields["code"], str) else None}}


def _type_for(status: int) -> str:
    return "server_error" if status >= 500 else "invalid_request_error"


@dataclass(frozen=True, slots=True)
class WireError:
    status: int
    body: bytes
    headers: list[tuple[str, str]]


def wire_error(exc: BaseException) -> WireError:
    """The HTTP answer for `exc`: status, JSON error body, and headers. An APIStatusError's
    headers are its `response`'s (`x-request-id`, `retry-after`, `x-modelmesh-provider`,
    `-model`, `-attempts`); where the error names no provider (every model of a pool failed),
    the last one tried is named."""
    status = error_status(exc)
    response = getattr(exc, "response", None)
    given = getattr(response, "headers", None)
    headers: dict[str, str] = dict(given) if isinstance(given, Mapping) else {}
    headers["content-type"] = JSON
    attempts = getattr(exc, "attempts", ())
    headers.setdefault("x-modelmesh-attempts", str(len(attempts)))
    if attempts:
        headers.setdefault("x-modelmesh-provider", attempts[-1].provider)
        headers.setdefault("x-modelmesh-model", attempts[-1].model)
    request_id = getattr(exc, "request_id", None)
    if isinstance(request_id, str) and request_id:
        headers.setdefault("x-request-id", request_id)
    return WireError(status=status, body=encode_json(error_body(exc)), headers=list(headers.items()))


def no_answer(exc: BaseException) -> str | None:
    """"timeout" or "connection" when no upstream answered (APITimeoutError, APIConnectionError),
    else None: an HTTP client reports those as its own timeout or connection error, not as a
    status from the server."""
    if isinstance(exc, E.APITimeoutError):
        return "timeout"
    if isinstance(exc, E.APIConnectionError):
        return "connection"
    return None


def error(status: int, message: str, code: str | None, param: str | None = None, *, type: str | None = None,
          headers: Iterable[tuple[str, str]] = ()) -> WireError:
    """An answer of the server's own in OpenAI's error shape; `type` defaults by the status."""
    body = {"error": {"message": message, "type": type or _type_for(status), "param": param, "code": code}}
    return WireError(status=status, body=encode_json(body), headers=[("content-type", JSON), *headers])


def unknown_route(method: str, path: str) -> WireError:
    """An endpoint the mesh does not serve; the words OpenAI uses for a URL it does not know."""
    return error(404, f"Invalid URL ({method} {path}): the mesh serves POST {', POST '.join(_POSTS)}, "
                        "GET /models, GET /models/{model}, /files and /fine_tuning/jobs", "unknown_url")


def method_not_allowed(method: str, path: str, allowed: str) -> WireError:
    return error(405, f"Method {method} is not allowed on {path}; use {allowed}", "method_not_allowed",
                 headers=[("allow", allowed)])


def missing_key() -> WireError:
    """No credential presented: OpenAI's words and its 401, with how to present one."""
    return error(401, "You didn't provide an API key. You need to provide your API key in an Authorization "
                        "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).", None)


def wrong_key() -> WireError:
    """A credential that is not one of ours. The key presented is never repeated, not even masked."""
    return error(401, "Incorrect API key provided.", "invalid_api_key")


def forbidden(message: str) -> WireError:
    return error(403, message, "forbidden", type="permission_error")


def too_large(limit: int) -> WireError:
    return error(413, f"The request body is larger than this server's limit of {limit} bytes", "request_too_large")


def unsupported_media_type(got: str, expected: str = JSON) -> WireError:
    shown = got[:80] if got else "none"
    what = "the form as multipart/form-data" if expected.startswith("multipart/") else "the JSON body as application/json"
    return error(415, f"Unsupported content type ({shown}): send {what}", "unsupported_media_type")


def invalid_body(reason: str, param: str | None = None) -> WireError:
    return error(400, reason, None if param is None else "missing_required_parameter", param)


def model_not_found(model_id: str) -> WireError:
    return error(404, f"The model '{model_id}' is neither a pool nor a configured model of this mesh",
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


TRANSCRIPTION_FORMATS = ("json", "text", "srt", "verbose_json", "vtt", "diarized_json")
TEXT_FORMATS = frozenset({"text", "srt", "vtt"})


def transcript_body(response: Mapping[str, Any], fmt: str, task: str) -> dict[str, Any] | str:
    """A transcription's (or translation's, `task` "translate") answer in the `response_format`
    asked: the text itself for `text`, `srt` and `vtt`; for `json` only what OpenAI's plain
    answer holds (what a vendor adds for verbose_json stays out); for `verbose_json` all, with
    its `task`."""
    if fmt in TEXT_FORMATS:
        return str(response["text"])
    data = dict(response)
    if fmt == "verbose_json":
        data.setdefault("task", task)
    elif fmt == "json":
        data = {k: v for k, v in data.items() if k in ("text", "usage", "logprobs")}
    return data


def find_model(listing: Mapping[str, Any], model_id: str) -> dict[str, Any] | None:
    """The model object with `model_id` in a models page, or None."""
    for item in listing.get("data") or ():
        if isinstance(item, dict) and item.get("id") == model_id:
            return item
    return None
