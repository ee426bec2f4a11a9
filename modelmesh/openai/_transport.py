"""MeshTransport: an httpx transport whose "network" is the mesh.

Theory of operation: the openai SDK builds an `httpx.Request` exactly as it would for
api.openai.com and hands it to `handle_request`. The path says what is asked (see
`_wire_openai.route`), the JSON body's `model` names a pool, a capability, a
`provider/model-id` or a bare model id, and the request goes through the MeshClient's
shell (`SyncTransport.start` / `execute` / `stream`): the same routing, failover,
health and events as `MeshClient.chat.completions.create`. That work is `_serving.serve`,
which the OpenAI-compatible proxy shares; what comes back is the HTTP answer OpenAI
would give, so the SDK parses it, raises its own exception types for errors, and reads
streams as SSE.

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

import threading
from collections.abc import Iterator
from typing import Any

import httpx

from .. import _wire_openai as wire
from .._serving import SSEBody, serve

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
        answer = serve(self.mesh, request.method, request.url.path, request.read(), base_path=self.base_path,
                       timeout=_deadline(request))
        silent = wire.no_answer(answer.error) if answer.error is not None else None
        if silent == "timeout":
            raise httpx.ReadTimeout(str(answer.error), request=request) from answer.error
        if silent == "connection":
            raise httpx.ConnectError(str(answer.error), request=request) from answer.error
        if answer.stream is not None:
            return httpx.Response(answer.status, headers=answer.headers, stream=_SSEStream(answer.stream),
                                  request=request)
        return httpx.Response(answer.status, headers=answer.headers, content=answer.body, request=request)


class _SSEStream(httpx.SyncByteStream):
    """The SSE body, produced as the SDK reads it; closing it ends the mesh stream."""

    def __init__(self, body: SSEBody) -> None:
        self._body = body

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._body)

    def close(self) -> None:
        self._body.close()


def _deadline(request: httpx.Request) -> float | None:
    """The SDK's `timeout` (its read value, 600 s unless set) caps the whole mesh request,
    failovers included; each attempt keeps its provider's configured timeouts."""
    timeout = request.extensions.get("timeout") or {}
    read = timeout.get("read") if isinstance(timeout, dict) else None
    return float(read) if isinstance(read, (int, float)) and read > 0 else None
