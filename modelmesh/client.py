"""MeshClient: an OpenAI-shaped client in front of the mesh.

`client.chat.completions.create(...)`, `client.embeddings.create(...)` and
`client.models.list()` take the OpenAI SDK's arguments; `model` names a pool, a
capability (`"chat-completion"`), a `provider/model-id` or a bare model id. Every OpenAI
parameter is passed through to the provider's codec; None values are left out (as the
SDK leaves out NOT_GIVEN). Three routing hints are ours: `session_id`,
`preferred_provider`, `routing_metadata`.

One client is meant to be shared by every thread of a process (a Django or Flask app,
gunicorn gthread workers): the core holds its lock around shared health only; parsing and I/O run
outside it, in the caller's thread.
"""
from __future__ import annotations

import logging
import os
import random
import threading
import time
from typing import Any, Callable, Mapping

from ._core import _errors as E
from ._core._config_schema import MeshConfig
from ._core._mesh import RoutingDecision, RoutingOptions
from ._core._policies import PolicySet
from ._response import ChatCompletion, ChatCompletionChunk, CreateEmbeddingResponse, MeshObject, ServedBy

__all__ = ["MeshClient", "ChatStream"]

class MeshClient:
    """The OpenAI-shaped client. `config` is a path to YAML/JSON, a dict, or a MeshConfig."""

    def __init__(
        self,
        config: str | os.PathLike | Mapping[str, Any] | MeshConfig,
        *,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] | None = None,
        seed: int | None = None,
        rng: random.Random | None = None,
        session: Any = None,
        on_event: Callable[[Any], None] | None = None,
        strategies: Mapping[str, Callable] | None = None,
        environ: Mapping[str, str] | None = None,
        policies: Mapping[str, PolicySet] | None = None,
        probe_check_interval: float = 1.0,
    ) -> None:
        """`probe_check_interval` is how often, in real seconds, the background probe thread
        (started by the first request, stopped by `close()`) looks for due recovery probes."""
        from ._build import build
        from .transports.sync import SyncTransport

        built = build(config, environ=environ, strategies=strategies, policies=policies, rng=rng, seed=seed,
                      lock=threading.Lock())  # the core holds it around shared health only
        self.config = built.config
        self.core = built.core
        self._clock = clock or time.time
        self._sinks = list(built.sinks)
        self._listeners: list[Callable[[Any], None]] = [s.emit for s in self._sinks]
        if on_event:
            self._listeners.append(on_event)
        self.core.listening = bool(self._listeners)  # with nobody listening, requests build no events
        shared = None
        if built.storage is not None:
            from .connectors.storage import Serializer
            from .transports._shared import SharedHealth

            storage_cfg = built.config.storage
            shared = SharedHealth(self.core, built.storage, Serializer(storage_cfg.format, storage_cfg.compression),
                                  clock=self._clock, lock_timeout=storage_cfg.locking_timeout, emit=self._dispatch_all)
        self.transport = SyncTransport(self.core, clock=self._clock, sleep=sleep or time.sleep, session=session,
                                       environ=environ, shared=shared, sync_policy=built.config.storage.sync_policy,
                                       sync_interval=built.config.storage.sync_interval,
                                       on_event=self._dispatch, probe_check_interval=probe_check_interval)
        self.chat = _Chat(self)
        self.embeddings = _Embeddings(self)
        self.models = _Models(self)

    def __repr__(self) -> str:
        return f"MeshClient(providers={list(self.core.providers)!r}, pools={list(self.core.pools)!r})"

    def __enter__(self) -> MeshClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self.transport.close()
        for sink in self._sinks:
            sink.close()

    # -- observability ----------------------------------------------------------------------
    def subscribe(self, listener: Callable[[Any], None]) -> None:
        """Call `listener(event)` for every mesh event (routed, failed, deactivated, ...)."""
        self._listeners.append(listener)
        self.core.listening = True

    def sync(self) -> bool:
        """Exchange model and provider standbys with the other processes sharing `storage` now
        (a sync policy does it by itself). False without shared storage or when it cannot be
        reached; never raises."""
        return self.transport.sync()

    def _dispatch_all(self, events: list) -> None:
        for event in events:
            self._dispatch(event)

    def _dispatch(self, event: Any) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:  # an observer's bug must not fail the request it observes
                logging.getLogger("modelmesh").exception("observability listener %r failed on %s", listener, event.type)

    # -- routing and state ---------------------------------------------------------------------
    def route(self, capability: str, *, session_id: str | None = None, preferred_provider: str | None = None) -> RoutingDecision:
        """The routing decision a request for `capability` would get now (nothing is sent)."""
        return self.core.route(capability, RoutingOptions(session_id=session_id, preferred_provider=preferred_provider),
                               now=self._clock())

    def status(self) -> dict[str, Any]:
        """Every provider's and pool member's state now; with shared storage, also `storage`:
        the store, the sync policy, when health was last exchanged and whether the store answers."""
        out = self.core.snapshot(self._clock())
        shared = self.transport.shared
        if shared is not None:
            out["storage"] = dict(shared.describe(), sync_policy=self.config.storage.sync_policy)
        return out

    def deactivate(self, model: str, *, pool: str | None = None, until: float | None = None) -> None:
        for ev in self.core.deactivate_model(model, pool=pool, until=until, now=self._clock()):
            self._dispatch(ev)

    def reactivate(self, model: str | None = None, *, provider: str | None = None, pool: str | None = None) -> None:
        events = []
        if provider is not None:
            events += self.core.reactivate_provider(provider, now=self._clock())
        if model is not None:
            events += self.core.reactivate_model(model, pool=pool, now=self._clock())
        for ev in events:
            self._dispatch(ev)

    def run_probes(self) -> int:
        """Send the due recovery probes now, in this thread; returns how many were sent. The
        background probe thread does this every `probe_check_interval`; requests never do."""
        return self.transport.run_probes()

    # -- requests ----------------------------------------------------------------------------------
    def _request(self, op: str, kwargs: dict[str, Any], stream: bool) -> Any:
        model = kwargs.pop("model", None)
        if not model:
            raise E.InvalidArgumentError(f"{op}: 'model' is required (a pool, capability or model id)")
        timeout = kwargs.pop("timeout", None)
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
            raise E.InvalidArgumentError(f"{op}: 'timeout' must be a positive number of seconds, got {timeout!r}")
        options = RoutingOptions(
            session_id=kwargs.pop("session_id", None),
            preferred_provider=kwargs.pop("preferred_provider", None),
            metadata=kwargs.pop("routing_metadata", None) or {},
            timeout=timeout,
        )
        extra = kwargs.pop("extra_body", None) or {}
        for unsupported in ("extra_headers", "extra_query"):
            if kwargs.pop(unsupported, None):
                raise E.InvalidArgumentError(f"{op}: '{unsupported}' is not supported; set provider headers in the configuration")
        body = {k: v for k, v in kwargs.items() if v is not None}
        body.update(extra)
        body["model"] = model
        if stream:
            body["stream"] = True
        call = self.transport.start(op, body, model=model, stream=stream, options=options)
        if stream:
            return ChatStream(self.transport.stream(call))
        return self.transport.execute(call)


def _served(result: Any) -> ServedBy:
    return ServedBy(provider=result.provider, model=result.model, pool=result.pool, request_id=result.request_id,
                    attempts=result.attempts, latency=result.latency, cost=result.cost)


class ChatStream:
    """An iterator of ChatCompletionChunk; `mesh` (ServedBy) is set once the stream has ended.

    Made by `create(stream=True)`, which has already waited for the first chunk: an error
    before any content (every model refused, the pool is exhausted) is raised by `create()`,
    as the OpenAI SDK raises a stream's HTTP error there."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle
        self.mesh: ServedBy | None = None
        self._items = iter(handle)
        self._first = next(self._items, None)

    def __iter__(self) -> ChatStream:
        return self

    def __next__(self) -> ChatCompletionChunk:
        item = self._first
        if item is not None:
            self._first = None
            return ChatCompletionChunk(item.chunk)
        try:
            item = next(self._items)
        except StopIteration:
            if self.mesh is None and self._handle.result is not None:
                self.mesh = _served(self._handle.result)
            raise
        return ChatCompletionChunk(item.chunk)

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._handle.close()

    @property
    def partial_text(self) -> str:
        return self._handle.call.partial_text


class _Completions:
    def __init__(self, client: MeshClient) -> None:
        self._client = client

    def create(self, *, stream: bool = False, **kwargs: Any) -> ChatCompletion | ChatStream:
        if "messages" not in kwargs:
            raise E.InvalidArgumentError("chat.completions.create: 'messages' is required")
        result = self._client._request("chat", kwargs, bool(stream))
        if stream:
            return result
        return ChatCompletion(result.response, _served(result))


class _Chat:
    def __init__(self, client: MeshClient) -> None:
        self.completions = _Completions(client)


class _Embeddings:
    def __init__(self, client: MeshClient) -> None:
        self._client = client

    def create(self, **kwargs: Any) -> CreateEmbeddingResponse:
        if "input" not in kwargs:
            raise E.InvalidArgumentError("embeddings.create: 'input' is required")
        result = self._client._request("embeddings", kwargs, False)
        return CreateEmbeddingResponse(result.response, _served(result))


class _Models:
    def __init__(self, client: MeshClient) -> None:
        self._client = client

    def list(self) -> MeshObject:
        """Every configured model (`provider/model-id`) and every pool, as OpenAI model objects."""
        core = self._client.core
        data = [{"id": ref, "object": "model", "created": 0, "owned_by": m.provider,
                 "capabilities": list(m.capabilities)} for ref, m in core.models.items()]
        data += [{"id": name, "object": "model", "created": 0, "owned_by": "modelmesh",
                  "capabilities": [p.config.capability] if p.config.capability else []}
                 for name, p in core.pools.items()]
        return MeshObject({"object": "list", "data": data})
