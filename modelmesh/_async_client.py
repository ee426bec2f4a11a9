"""AsyncMeshClient: MeshClient's surface for asyncio code, over the asyncio shell (httpx).

    async with modelmesh.AsyncMeshClient(config="modelmesh.yaml") as client:
        r = await client.chat.completions.create(model="chat", messages=[...])
        async for chunk in await client.chat.completions.create(model="chat", messages=[...], stream=True):
            ...

Everything but the awaiting is MeshClient's own code (`client._MeshBase`: configuration,
arguments, options, routing, state; the response objects; the errors): the resources here
only await the transport where MeshClient's call it. One client is safe to share across
the tasks of its event loop; shared-storage I/O runs in worker threads, never on the loop.
"""
from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Callable, Mapping
from typing import Any

from ._core._config_schema import MeshConfig
from ._core._policies import PolicySet
from ._response import ChatCompletion, ChatCompletionChunk, CreateEmbeddingResponse, Model, SyncPage
from .client import (
    _ClientRaw,
    _MeshBase,
    _model,
    _models_page,
    _need,
    _parse_request,
    _parsed,
    _Resource,
    _served,
    _StreamView,
)

__all__ = ["AsyncMeshClient", "AsyncChatStream"]


class AsyncMeshClient(_MeshBase):
    """The OpenAI-shaped client for asyncio: `await client.chat.completions.create(...)`.
    Takes MeshClient's arguments (`session` aside: connections are httpx's); `sleep` may be
    a coroutine function or a plain one (a FakeClock's)."""

    def __init__(
        self,
        config: str | os.PathLike[str] | Mapping[str, Any] | MeshConfig | None = None,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        organization: str | None = None,
        project: str | None = None,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Any] | None = None,
        seed: int | None = None,
        rng: random.Random | None = None,
        on_event: Callable[[Any], None] | None = None,
        strategies: Mapping[str, Callable[..., Any]] | None = None,
        environ: Mapping[str, str] | None = None,
        policies: Mapping[str, PolicySet] | None = None,
        probe_check_interval: float = 1.0,
    ) -> None:
        try:
            from .transports.asyncio import AsyncTransport
        except ImportError as exc:  # httpx is the `async` extra
            raise ImportError("AsyncMeshClient needs httpx: pip install 'modelmesh-lite[async]'") from exc

        common = self._setup(config, base_url, api_key, organization, project, clock, seed, rng, on_event, strategies,
                             environ, policies)
        self.transport = AsyncTransport(self.core, sleep=sleep, probe_check_interval=probe_check_interval, **common)
        self._hook_finished()
        self._follow_jobs()
        if self._jobs is not None:
            self.transport.round_hooks.append(self._jobs.acheck)
        self._resources()

    async def __aenter__(self) -> AsyncMeshClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        """Cancel the probe task, close the connections and the observability sinks."""
        await self.transport.aclose()
        await asyncio.to_thread(self.observer.close)  # a webhook sink may take close_timeout to send the rest
        for sink in self._sinks:
            sink.close()

    aclose = close

    async def sync(self) -> bool:
        """Exchange standbys with the other processes sharing `storage` now (in a worker thread).
        False without shared storage or when it cannot be reached; never raises."""
        return bool(await self.transport.sync())

    async def run_probes(self) -> int:
        """Send the due recovery probes now; returns how many were sent. The client's probe
        task does this every `probe_check_interval`; requests never do."""
        return int(await self.transport.run_probes())

    async def run_discovery(self) -> int:
        """Fetch the model listings the registry sync wants now and the quota and price queries
        due, and apply them; returns how many were fetched. The client's background task does
        this by itself."""
        return int(await self.transport.run_discovery())

    async def check_jobs(self) -> int:
        """As MeshClient's `check_jobs`, awaited."""
        return await self._jobs.acheck(force=True) if self._jobs is not None else 0

    def _resources(self) -> None:
        from ._abatch import AsyncBatches  # here, not at import: `import modelmesh` stays lean
        from ._files import AsyncFiles, AsyncFineTuning
        from ._media import AsyncAudio, AsyncImages

        self.chat = _AsyncChat(self)
        self.embeddings = _AsyncEmbeddings(self)
        self.models = _AsyncModels(self)
        self.audio = AsyncAudio(self)
        self.images = AsyncImages(self)
        self.batches = AsyncBatches(self)
        self.files = AsyncFiles(self)
        self.fine_tuning = AsyncFineTuning(self)
        self.with_raw_response = _ClientRaw(self)

    async def _request(self, op: str, kwargs: dict[str, Any], stream: bool, view: Any = None) -> Any:
        """Send a request; a stream comes back as `await view.open(handle)` (an AsyncChatStream unless told)."""
        body, model, options = self._prepare(op, kwargs, stream)
        call = await self.transport.start(op, body, model=model, stream=stream, options=options)
        if stream:
            return await (view or AsyncChatStream).open(self.transport.stream(call))
        return await self.transport.execute(call)


class AsyncChatStream(_StreamView):
    """An async iterator of ChatCompletionChunk; `mesh` (ServedBy) is set once it has ended.
    As with ChatStream, `create(stream=True)` has already waited for the first chunk, so an
    error before any content is raised by `create()`."""

    def __aiter__(self) -> AsyncChatStream:
        return self

    async def __anext__(self) -> ChatCompletionChunk:
        item = self._first
        if item is not None:
            self._first = None
            return ChatCompletionChunk(item.chunk)
        try:
            item = await self._handle.__anext__()
        except StopAsyncIteration:
            self._ended()
            raise
        return ChatCompletionChunk(item.chunk)

    async def __aenter__(self) -> AsyncChatStream:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop reading: an unfinished call is cancelled and its connection closed."""
        await self._handle.aclose()

    aclose = close


class _AsyncCompletions(_Resource):
    async def create(self, *, stream: bool = False, **kwargs: Any) -> ChatCompletion | AsyncChatStream:
        _need("chat.completions.create", "messages", kwargs)
        result = await self._client._request("chat", kwargs, bool(stream))
        return result if stream else ChatCompletion(result.response, _served(result))

    async def parse(self, *, response_format: Any, **kwargs: Any) -> ChatCompletion:
        """As MeshClient's `chat.completions.parse`, awaited."""
        validate = _parse_request(response_format, kwargs)
        completion = await self.create(**kwargs)
        assert isinstance(completion, ChatCompletion)
        return _parsed(completion, validate)


class _AsyncChat:
    def __init__(self, client: AsyncMeshClient) -> None:
        self.completions = _AsyncCompletions(client)


class _AsyncEmbeddings(_Resource):
    async def create(self, **kwargs: Any) -> CreateEmbeddingResponse:
        _need("embeddings.create", "input", kwargs)
        result = await self._client._request("embeddings", kwargs, False)
        return CreateEmbeddingResponse(result.response, _served(result))


class _AsyncModels(_Resource):
    async def list(self) -> SyncPage:
        """Every configured model and every pool, as a page of OpenAI model objects (nothing is sent)."""
        return _models_page(self._client.core)

    async def retrieve(self, model: str) -> Model:
        """One model or pool of `list()`, by its id; NotFoundError (404) for any other id."""
        return _model(self._client.core, model)
