"""Serving OpenAI API requests through a MeshClient: the work every OpenAI-shaped front door shares.

Theory of operation: a front door (the httpx transport under the openai SDK, the WSGI proxy)
hands `serve` the request's method, path and body bytes. `serve` routes the path
(`_wire_openai.route`), parses the JSON body, sends it through the MeshClient's shell
(`transport.start` / `execute` / `stream`) and returns an `Answer`: a status, headers and
either the body bytes or an `SSEBody`. The front door only writes that answer out in its
own terms (an `httpx.Response`, a WSGI response) and decides what a mesh error in which no
upstream answered means to its caller (`Answer.error`, see `_wire_openai.no_answer`).

A stream is pulled until its first chunk (or its failure) before `serve` returns, so a
routing failure is the answer's status; the rest is pulled lazily as the front door reads
the SSEBody, and the events of one network read come out as one piece (`Call.buffered`
says how many are ready). Closing the SSEBody closes the mesh stream and its upstream
connection: a caller that goes away mid-stream costs nothing further.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import _wire_openai as wire
from ._core import _errors as E
from ._core._protocol import RoutingOptions

__all__ = ["Answer", "SSEBody", "serve", "models_page"]


@dataclass(slots=True, kw_only=True)
class Answer:
    """What to write back. `stream` is set for a stream (then `body` is empty); `error` is the
    mesh error answered, if any; `served` the mesh's Succeeded for an answer it routed
    (for a stream, `stream.result` once it has ended)."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""
    stream: SSEBody | None = None
    error: BaseException | None = None
    served: Any = None
    op: str | None = None  # "chat", "embeddings", "models", "model"; None for an unknown route
    model: str | None = None  # what the request asked for (a pool, capability or model id)


def error_answer(err: wire.WireError, **kw: Any) -> Answer:
    return Answer(status=err.status, headers=list(err.headers), body=err.body, **kw)


def json_answer(status: int, value: Any, **kw: Any) -> Answer:
    return Answer(status=status, headers=[("content-type", wire.JSON)], body=wire.encode_json(value), **kw)


def models_page(mesh: Any) -> dict[str, Any]:
    listing = mesh.models.list()
    return listing.model_dump() if hasattr(listing, "model_dump") else dict(listing)


def serve(mesh: Any, method: str, path: str, body: bytes, *, base_path: str = "/v1",
          timeout: float | None = None, aliases: Mapping[str, str] | None = None,
          permit: Callable[[str], wire.WireError | None] | None = None) -> Answer:
    """Answer `method path` (a full path: `base_path` is taken off it) with JSON `body`
    through `mesh`. `timeout` caps the whole mesh request, failovers included; `aliases`
    maps a model name a caller sends to the pool, capability or model it means; `permit`
    is asked about the pool the request was routed to before anything is sent, and may
    answer with an error instead (the proxy's per-key allowed pools)."""
    relative = path[len(base_path):] if path.startswith(base_path + "/") else None
    found = wire.route(method, relative) if relative is not None else None
    if found is None:
        return error_answer(wire.unknown_route(method, path))
    if found.op == "models":
        return json_answer(200, models_page(mesh),
                      op=found.op)
    if found.op == "model":
        model = wire.find_model(models_page(mesh), found.model_id or "")
        if model is None:
            return error_answer(wire.model_not_found(found.model_id or ""), op=found.op, model=found.model_id)
        return json_answer(200, model, op=found.op,
                      model=found.model_id)
    parsed = parse_body(body)
    if isinstance(parsed, wire.WireError):
        return error_answer(parsed, op=found.op)
    name = parsed["model"]
    if aliases and name in aliases:
        parsed = dict(parsed, model=aliases[name])
    return _send(mesh, found.op, parsed, name, timeout, permit)


def parse_body(body: bytes) -> dict[str, Any] | wire.WireError:
    """The request's JSON object with a non-empty `model`, or the 400 that says what is wrong."""
    try:
        parsed = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError):
        return wire.invalid_body("We could not parse the JSON body of your request.")
    if not isinstance(parsed, dict):
        return wire.invalid_body("The request body must be a JSON object.")
    model = parsed.get("model")
    if not isinstance(model, str) or not model:
        return wire.invalid_body("you must provide a model parameter (a pool, a capability or a model id)", "model")
    return parsed


def _send(mesh: Any, op: str, body: dict[str, Any], asked: str, timeout: float | None,
          permit: Callable[[str], wire.WireError | None] | None = None) -> Answer:
    stream = op == "chat" and body.get("stream") is True
    encoding = None
    if op == "embeddings":
        body, encoding = wire.embeddings_request(body)
    options = RoutingOptions(timeout=timeout)
    try:
        call = mesh.transport.start(op, body, model=body["model"], stream=stream, options=options)
        denied = permit(call.pool.name) if permit is not None else None
        if denied is not None:  # nothing sent yet: a started call holds nothing
            return error_answer(denied, op=op, model=asked)
        if stream:
            return _stream(mesh, call, asked)
        result = mesh.transport.execute(call)
    except E.ModelMeshError as exc:
        return _failure(exc, op=op, model=asked)
    out = result.response or {}
    if op == "embeddings":
        out = wire.embeddings_body(out, encoding)
    headers = wire.served_headers(provider=result.provider, model=result.model, attempts=len(result.attempts),
                                  request_id=result.request_id, pool=result.pool)
    return Answer(status=200, headers=headers, body=wire.encode_json(out), served=result, op=op, model=asked)


def _failure(exc: E.ModelMeshError, **kw: Any) -> Answer:
    err = wire.wire_error(exc)
    return Answer(status=err.status, headers=err.headers, body=err.body, error=exc, **kw)


def _stream(mesh: Any, call: Any, asked: str) -> Answer:
    handle = mesh.transport.stream(call)
    try:
        first = next(handle)
    except StopIteration:  # a stream that ended without a chunk: nothing to say but [DONE]
        first = None
    except E.ModelMeshError as exc:
        return _failure(exc, op="chat", model=asked)
    if first is None:
        result = handle.result
        provider, model = (result.provider, result.model) if result else ("", "")
    else:
        provider, model = first.provider, first.model
    # the serving attempt is not in call.attempts until the stream ends: the failed ones are
    headers = wire.served_headers(provider=provider, model=model, attempts=len(call.attempts) + (first is not None),
                                  request_id=call.request_id, pool=call.pool.name, content_type=wire.EVENT_STREAM)
    return Answer(status=200, headers=headers, stream=SSEBody(handle, first), op="chat", model=asked)


@dataclass(eq=False)
class SSEBody:
    """A stream's SSE body, produced as it is read: pieces of `data: ...\\n\\n` events, the
    events of one network read in one piece, then `[DONE]` (or OpenAI's mid-stream error
    event, kept in `error`). `close()` ends the mesh stream; `result` is its Succeeded
    once it has ended."""

    handle: Any
    first: Any
    error: BaseException | None = None
    _pieces: Generator[bytes, None, None] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._pieces = self._run()

    @property
    def result(self) -> Any:
        return self.handle.result

    def __iter__(self) -> Iterator[bytes]:
        return self._pieces

    def __next__(self) -> bytes:
        return next(self._pieces)

    def close(self) -> None:
        self._pieces.close()
        self.handle.close()

    def _chunks(self) -> Iterator[Any]:
        if self.first is not None:
            yield self.first.chunk
        try:
            for delivered in self.handle:
                yield delivered.chunk
        except E.ModelMeshError as exc:
            self.error = exc
            raise

    def _run(self) -> Generator[bytes, None, None]:
        call, parts = self.handle.call, []
        for event in wire.sse_stream(self._chunks()):
            parts.append(event)
            if not call.buffered:
                yield b"".join(parts)
                parts.clear()
        if parts:
            yield b"".join(parts)
