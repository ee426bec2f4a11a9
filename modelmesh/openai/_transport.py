"""MeshTransport: an httpx transport whose "network" is the mesh.

Theory of operation: the openai SDK builds an `httpx.Request` exactly as it would for
api.openai.com and hands it to `handle_request`. The path says what is asked (see
`_wire_openai.route`), the JSON body's `model` names a pool, a capability, a
`provider/model-id` or a bare model id, and the request goes through the MeshClient's
shell (`SyncTransport.start` / `execute` / `stream`): the same routing, failover,
health and events as `MeshClient.chat.completions.create`. What comes back is encoded by
`_wire_openai` into the HTTP answer OpenAI would give, so the SDK parses it, raises its
own exception types for errors, and reads streams as SSE.

A stream is pulled here until its first chunk (or its failure) before the response is
returned, so a routing failure is the response's status and the SDK raises it from
`create()`; the rest is pulled lazily as the SDK reads the body, one chunk at a time.
When no upstream answered at all (the mesh's APIConnectionError / APITimeoutError), the
transport raises httpx's ConnectError / ReadTimeout, which the SDK reports as its own
APIConnectionError / APITimeoutError, as it would for api.openai.com.
The SDK's Authorization header is never read or forwarded: each provider gets its own
key from the mesh configuration.
"""
from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx

from .. import _wire_openai as wire
from .._core import _errors as E
from .._core._protocol import RoutingOptions

__all__ = ["MeshTransport"]


class MeshTransport(httpx.BaseTransport):
    """Serves OpenAI API requests under `base_path` through `mesh` (a MeshClient), which it
    owns: closing the transport (as closing the httpx client or the SDK client does) closes it."""

    def __init__(self, mesh: Any, *, base_path: str = "/v1") -> None:
        self.mesh = mesh
        self.base_path = base_path.rstrip("/")
        self._closed = False
        self._close_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MeshTransport({self.mesh!r})"

    def close(self) -> None:
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self.mesh.close()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        relative = path[len(self.base_path):] if path.startswith(self.base_path + "/") else None
        found = wire.route(request.method, relative) if relative is not None else None
        if found is None:
            return _answer(wire.unknown_route(request.method, path), request)
        if found.op == "models":
            return _json(200, self._models(), request)
        if found.op == "model":
            model = wire.find_model(self._models(), found.model_id or "")
            if model is None:
                return _answer(wire.model_not_found(found.model_id or ""), request)
            return _json(200, model, request)
        try:
            body = json.loads(request.read() or b"null")
        except ValueError:
            return _answer(wire.invalid_body("We could not parse the JSON body of your request."), request)
        if not isinstance(body, dict):
            return _answer(wire.invalid_body("The request body must be a JSON object."), request)
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return _answer(wire.invalid_body("you must provide a model parameter (a pool, a capability or a model id)",
                                             "model"), request)
        stream = found.op == "chat" and body.get("stream") is True
        encoding = None
        if found.op == "embeddings":
            body, encoding = wire.embeddings_request(body)
        options = RoutingOptions(timeout=_deadline(request))
        try:
            call = self.mesh.transport.start(found.op, body, model=model, stream=stream, options=options)
            if stream:
                return self._stream(call, request)
            result = self.mesh.transport.execute(call)
        except E.ModelMeshError as exc:
            return _failure(exc, request)
        out = result.response or {}
        if found.op == "embeddings":
            out = wire.embeddings_body(out, encoding)
        headers = wire.served_headers(provider=result.provider, model=result.model, attempts=len(result.attempts),
                                      request_id=result.request_id, pool=result.pool)
        return httpx.Response(200, headers=headers, content=wire.encode_json(out), request=request)

    def _models(self) -> dict[str, Any]:
        listing = self.mesh.models.list()
        return listing.model_dump() if hasattr(listing, "model_dump") else dict(listing)

    def _stream(self, call: Any, request: httpx.Request) -> httpx.Response:
        handle = self.mesh.transport.stream(call)
        try:
            first = next(handle)
        except StopIteration:  # a stream that ended without a chunk: nothing to say but [DONE]
            first = None
        except E.ModelMeshError as exc:
            return _failure(exc, request)
        if first is None:
            result = handle.result
            provider, model = (result.provider, result.model) if result else ("", "")
            chunks: Iterator[Any] = iter(())
        else:
            provider, model = first.provider, first.model
            chunks = itertools.chain([first.chunk], (d.chunk for d in handle))
        # the serving attempt is not in call.attempts until the stream ends: the failed ones are
        headers = wire.served_headers(provider=provider, model=model, attempts=len(call.attempts) + (first is not None),
                                      request_id=call.request_id, pool=call.pool.name, content_type=wire.EVENT_STREAM)
        return httpx.Response(200, headers=headers, stream=_SSEStream(wire.sse_stream(chunks), handle), request=request)


class _SSEStream(httpx.SyncByteStream):
    """The SSE body, produced as the SDK reads it; closing it ends the mesh stream."""

    def __init__(self, events: Iterator[bytes], handle: Any) -> None:
        self._events = events
        self._handle = handle

    def __iter__(self) -> Iterator[bytes]:
        # the events of one network read go to the SDK together: one piece per read, not per chunk
        call, parts = self._handle.call, []
        for event in self._events:
            parts.append(event)
            if not call.buffered:
                yield b"".join(parts)
                parts.clear()
        if parts:
            yield b"".join(parts)

    def close(self) -> None:
        self._handle.close()


def _deadline(request: httpx.Request) -> float | None:
    """The SDK's `timeout` (its read value, 600 s unless set) caps the whole mesh request,
    failovers included; each attempt keeps its provider's configured timeouts."""
    timeout = request.extensions.get("timeout") or {}
    read = timeout.get("read") if isinstance(timeout, dict) else None
    return float(read) if isinstance(read, (int, float)) and read > 0 else None


def _json(status: int, value: Any, request: httpx.Request) -> httpx.Response:
    return httpx.Response(status, headers=[("content-type", wire.JSON)], content=wire.encode_json(value),
                          request=request)


def _answer(err: wire.WireError, request: httpx.Request) -> httpx.Response:
    return httpx.Response(err.status, headers=err.headers, content=err.body, request=request)


def _failure(exc: E.ModelMeshError, request: httpx.Request) -> httpx.Response:
    silent = wire.no_answer(exc)
    if silent == "timeout":
        raise httpx.ReadTimeout(str(exc), request=request) from exc
    if silent == "connection":
        raise httpx.ConnectError(str(exc), request=request) from exc
    return _answer(wire.wire_error(exc), request)
