"""One test body, both clients: AsyncMeshClient seen through MeshClient's blocking surface.

`make_client("sync" | "async", config, **kw)` gives a MeshClient, or an adapter over an
AsyncMeshClient whose every call is a coroutine run on one event loop in a background
thread (`run_coroutine_threadsafe`): many test threads may call it at once, and they then
share one client on one loop, as the tasks of an asyncio application do. Streams come back
as blocking iterators over the async stream. What the tests assert on (response objects,
errors, `mesh`, `status()`) is the async client's own, not the adapter's.
"""
from __future__ import annotations

import asyncio
import threading
from typing import Any

import modelmesh

SHELLS = ["sync", "async"]


def make_client(shell: str, config: Any, **kwargs: Any) -> Any:
    if shell == "sync":
        return modelmesh.MeshClient(config, **kwargs)
    return AsyncAdapter(config, **kwargs)


class AsyncAdapter:
    def __init__(self, config: Any, **kwargs: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="test-loop", daemon=True)
        self._thread.start()
        self.client = modelmesh.AsyncMeshClient(config, **kwargs)
        self.chat = _Chat(self)
        self.embeddings = _Call(self, self.client.embeddings)
        self.models = _Call(self, self.client.models)
        self.files = _Call(self, self.client.files)
        self.fine_tuning = _FineTuning(self)

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def __getattr__(self, name: str) -> Any:  # status(), route(), config, core, ...: the client's own
        return getattr(self.client, name)

    def __repr__(self) -> str:
        return repr(self.client)

    def __enter__(self) -> AsyncAdapter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        if self._loop.is_closed():
            return
        try:
            self.run(self.client.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()


class _Call:
    def __init__(self, adapter: AsyncAdapter, resource: Any) -> None:
        self._a = adapter
        self._r = resource

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._r, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            result = self._a.run(method(*args, **kwargs))
            if isinstance(result, modelmesh._async_client.AsyncChatStream):
                return _Stream(self._a, result)
            return result

        return call


class _Chat:
    def __init__(self, adapter: AsyncAdapter) -> None:
        self.completions = _Call(adapter, adapter.client.chat.completions)


class _FineTuning:
    def __init__(self, adapter: AsyncAdapter) -> None:
        self.jobs = _Call(adapter, adapter.client.fine_tuning.jobs)


class _Stream:
    """An AsyncChatStream read with `for`, `next()` and `with`."""

    def __init__(self, adapter: AsyncAdapter, stream: Any) -> None:
        self._a = adapter
        self.stream = stream

    def __iter__(self) -> _Stream:
        return self

    def __next__(self) -> Any:
        try:
            return self._a.run(self.stream.__anext__())
        except StopAsyncIteration:
            raise StopIteration from None

    def __getattr__(self, name: str) -> Any:  # mesh, partial_text, answered_by, ...
        return getattr(self.stream, name)

    def close(self) -> None:
        self._a.run(self.stream.close())

    def __enter__(self) -> _Stream:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
