"""What callers hold besides a response object: the streams they read, and raw responses.

Shared by both clients and their audio and image resources (`_media.py`): a stream handed
to a caller (`_Opened`: its handle, and `mesh` once it has ended; the async kinds' `open`),
the chat stream's extra views (`_StreamView`), a resource's `with_raw_response` and the
`RawResponse` it answers with.
"""
from __future__ import annotations

import inspect
import json
from collections.abc import Mapping
from typing import Any

from ._core import _errors as E
from ._response import ServedBy

__all__ = ["RawResponse"]


def _served(result: Any) -> ServedBy:
    return ServedBy(provider=result.provider, model=result.model, pool=result.pool, request_id=result.request_id,
                    attempts=result.attempts, latency=result.latency, cost=result.cost, headers=result.headers)


class _Opened:
    """A mesh stream handed to a caller (chat or speech, sync or async): its handle, and
    `mesh` (ServedBy) once it has ended. The async kinds are made by `await open(handle)`,
    which waits for the first item, so an error before any content is raised there."""

    _handle: Any
    mesh: ServedBy | None
    _first: Any

    def _ended(self) -> None:
        if self.mesh is None and self._handle.result is not None:
            self.mesh = _served(self._handle.result)

    @property
    def request_id(self) -> str:
        return str(self._handle.call.request_id)

    @classmethod
    async def open(cls, handle: Any) -> Any:
        stream = cls.__new__(cls)
        stream._handle, stream.mesh, stream._first = handle, None, None
        try:
            stream._first = await handle.__anext__()
        except StopAsyncIteration:
            stream._ended()
        return stream


class _StreamView(_Opened):
    """What a chat stream tells besides its chunks (shared by ChatStream and AsyncChatStream)."""

    @property
    def partial_text(self) -> str:
        return str(self._handle.call.partial_text)

    @property
    def answered_by(self) -> tuple[str, str, Mapping[str, str]] | None:
        """(provider, model id, response headers) of the answer being delivered."""
        answered: tuple[str, str, Mapping[str, str]] | None = self._handle.call.answered_by
        return answered

    @property
    def attempts(self) -> tuple[Any, ...]:
        """The attempts that failed before the one being delivered."""
        return tuple(self._handle.call.attempts)


class _Resource:
    def __init__(self, client: Any) -> None:
        self._client = client

    @property
    def with_raw_response(self) -> _RawCalls:
        """The same methods, each answered as a `RawResponse` (headers, `parse()`)."""
        return _RawCalls(self)


class _RawCalls:
    """`resource.with_raw_response`: each public method of `resource`, answered as a RawResponse."""

    def __init__(self, resource: Any) -> None:
        self._resource = resource

    def __getattr__(self, name: str) -> Any:
        method = None if name.startswith("_") else getattr(self._resource, name, None)
        if not callable(method):
            raise AttributeError(f"with_raw_response has no method {name!r}")

        if inspect.iscoroutinefunction(method):  # an AsyncMeshClient's: awaited, then wrapped
            async def raw_async(*args: Any, **kwargs: Any) -> RawResponse:
                return RawResponse(await method(*args, **kwargs))

            raw_async.__name__ = name
            return raw_async

        def raw(*args: Any, **kwargs: Any) -> RawResponse:
            return RawResponse(method(*args, **kwargs))

        raw.__name__ = name
        return raw


class RawResponse:
    """What `with_raw_response` gives, read like the OpenAI SDK's: `headers` (the serving
    provider's, plus `x-modelmesh-provider`, `-model`, `-attempts`, `-request-id`),
    `status_code`, `request_id`, `retries_taken` (attempts before the one that served) and
    `parse()`, the object the plain call returns (a ChatStream for streams)."""

    status_code = 200

    def __init__(self, parsed: Any) -> None:
        self._parsed = parsed
        served = getattr(parsed, "mesh", None)
        provider: str | None = None
        model: str | None = None
        request_id: str | None = None
        upstream: Mapping[str, str] = {}
        attempts = 0
        if isinstance(parsed, _StreamView):
            answered = parsed.answered_by
            if answered:
                provider, model, upstream = answered
            request_id, attempts = parsed.request_id, len(parsed.attempts) + 1
        elif isinstance(served, ServedBy):
            provider, model, upstream = served.provider, served.model, served.headers
            request_id, attempts = served.request_id, len(served.attempts)
        self.headers = _Headers(E.mesh_headers(request_id=request_id, provider=provider, model=model,
                                               attempts=attempts, upstream=upstream))
        self.retries_taken = max(0, attempts - 1)

    @property
    def request_id(self) -> str | None:
        found: str | None = self.headers.get("x-request-id")
        return found

    def parse(self) -> Any:
        return self._parsed

    @property
    def content(self) -> bytes:
        """The body's bytes: speech's audio, else the text encoded."""
        audio = getattr(self._parsed, "content", None)
        return audio if isinstance(audio, bytes) else self.text.encode()

    @property
    def text(self) -> str:
        if isinstance(self._parsed, _StreamView):
            raise E.InvalidArgumentError("a raw stream has no text: iterate parse() for its chunks")
        if isinstance(self._parsed, str):  # a transcript asked as text, srt or vtt
            return self._parsed
        if isinstance(getattr(self._parsed, "content", None), bytes):
            raise E.InvalidArgumentError("a raw speech response is audio, not text: read its bytes from .content")
        return str(self._parsed.model_dump_json())

    def json(self) -> Any:
        return json.loads(self.text)

    def __repr__(self) -> str:
        return f"<RawResponse [{self.status_code}] {self.headers.get('x-modelmesh-provider')}>"


class _Headers(dict[str, str]):
    """Response headers, looked up without regard to case, as HTTP headers are."""

    def __init__(self, items: Mapping[str, str]) -> None:
        super().__init__((k.lower(), v) for k, v in items.items())

    def __getitem__(self, key: str) -> str:
        return str(super().__getitem__(key.lower()))

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)
