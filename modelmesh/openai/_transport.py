"""MeshTransport / AsyncMeshTransport: httpx transports whose "network" is the mesh.

Theory of operation: the openai SDK builds an `httpx.Request` exactly as it would for
api.openai.com and hands it to `handle_request` (`handle_async_request` under
`openai.AsyncOpenAI`). The path says what is asked (see `_wire_openai.route`), the JSON
body's `model` names a pool, a capability, a `provider/model-id` or a bare model id, and
the request goes through the mesh client's shell (`transport.start` / `execute` /
`stream`): the same routing, failover, health and events as
`MeshClient.chat.completions.create`. That work is `_serving.serving` (performed by
`serve` for a MeshClient, `aserve` for an AsyncMeshClient), which the OpenAI-compatible
proxy shares; what comes back is the HTTP answer OpenAI would give, and `_response` writes
it as an `httpx.Response` for both transports, so the SDK parses it, raises its own
exception types for errors, and reads streams as SSE.

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
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx

from .. import _wire_openai as wire
from .._core import _errors as E
from .._serving import Answer, AsyncBytesBody, AsyncSSEBody, BytesBody, SSEBody, aserve, serve

__all__ = ["MeshTransport", "AsyncMeshTransport"]


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
                       timeout=_deadline(request), content_type=request.headers.get("content-type"),
                       query=request.url.query.decode("ascii", "replace"),
                       provider=request.headers.get(wire.PROVIDER_HEADER))
        return _response(answer, request)


class AsyncMeshTransport(httpx.AsyncBaseTransport):
    """MeshTransport for `openai.AsyncOpenAI`: serves through `mesh` (an AsyncMeshClient),
    which it owns: `aclose()` (as closing the httpx client or the SDK client does) closes it."""

    def __init__(self, mesh: Any, *, base_path: str = "/v1") -> None:
        self.mesh = mesh
        self.base_path = base_path.rstrip("/")
        self._closed = False

    def __repr__(self) -> str:
        return f"AsyncMeshTransport({self.mesh!r})"

    async def aclose(self) -> None:
        if self._closed:  # set before the first await: one task of the loop closes the mesh, once
            return
        self._closed = True
        await self.mesh.aclose()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        answer = await aserve(self.mesh, request.method, request.url.path, await request.aread(),
                              base_path=self.base_path, timeout=_deadline(request),
                              content_type=request.headers.get("content-type"),
                              query=request.url.query.decode("ascii", "replace"),
                              provider=request.headers.get(wire.PROVIDER_HEADER))
        return _response(answer, request)


def _response(answer: Answer, request: httpx.Request) -> httpx.Response:
    """The answer as httpx's response (the SDK's input), or the httpx error that says no
    upstream answered at all."""
    silent = wire.no_answer(answer.error) if answer.error is not None else None
    if silent == "timeout":
        raise httpx.ReadTimeout(str(answer.error), request=request) from answer.error
    if silent == "connection":
        raise httpx.ConnectError(str(answer.error), request=request) from answer.error
    body = answer.stream
    if isinstance(body, (AsyncSSEBody, AsyncBytesBody)):
        return httpx.Response(answer.status, headers=answer.headers, stream=_AsyncSSEStream(body), request=request)
    if body is not None:
        return httpx.Response(answer.status, headers=answer.headers, stream=_SSEStream(body), request=request)
    return httpx.Response(answer.status, headers=answer.headers, content=answer.body, request=request)


class _SSEStream(httpx.SyncByteStream):
    """The SSE body (or speech audio), produced as the SDK reads it; closing it ends the mesh
    stream. Audio cut after bytes went out is what a connection broken mid-body is to httpx."""

    def __init__(self, body: SSEBody | BytesBody) -> None:
        self._body = body

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._body
        except E.ModelMeshError as exc:
            raise httpx.RemoteProtocolError(f"the stream was cut: {exc}") from exc

    def close(self) -> None:
        self._body.close()


class _AsyncSSEStream(httpx.AsyncByteStream):
    """The SSE body (or speech audio) of an async stream; `aclose()` (or a cancelled read)
    ends the mesh stream."""

    def __init__(self, body: AsyncSSEBody | AsyncBytesBody) -> None:
        self._body = body

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for piece in self._body:
                yield piece
        except E.ModelMeshError as exc:
            raise httpx.RemoteProtocolError(f"the stream was cut: {exc}") from exc

    async def aclose(self) -> None:
        await self._body.aclose()


def _deadline(request: httpx.Request) -> float | None:
    """The SDK's `timeout` (its read value, 600 s unless set) caps the whole mesh request,
    failovers included; each attempt keeps its provider's configured timeouts."""
    timeout = request.extensions.get("timeout") or {}
    read = timeout.get("read") if isinstance(timeout, dict) else None
    return float(read) if isinstance(read, (int, float)) and read > 0 else None
