"""Seed 004's Router surface over a MeshClient: `route`, `complete`, `stream`, `get_pool`,
`list_pools`, with `RoutingOptions`, `CompletionRequest` and `CompletionResponse`.

    router = Router(config="modelmesh.yaml")            # or Router(client=MeshClient(...))
    r = router.complete("chat-completion", CompletionRequest(messages=[...]))
    r.content, r.provider, r.model, r.usage, r.latency_ms

A Router is a thin, synchronous face on the client (the seeds write it async; we are
thread-based): every call goes through the client's request path, so failover, health,
budgets, events and errors are the client's, and the OpenAI-shaped API and the Router can be
used side by side on one client. `capability` is anything a request's `model` may name (a
pool, a capability, a `provider/model-id`, a bare model id). `options` apply to that call
only. `batch` runs many requests as one job (`modelmesh._batch`): through the mesh, a few
at a time with failover per item, or, with `delivery_mode="batch"`, through a provider's
batch API.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._core._errors import InvalidArgumentError, NotFoundError
from ._core._protocol import RoutingDecision, RoutingOptions

if TYPE_CHECKING:
    from ._batch import BatchJob, BatchProgress

_HINTS = ("session_id", "preferred_provider", "delivery_mode", "routing_metadata")

__all__ = ["Router", "RoutingOptions", "RoutingDecision", "CompletionRequest", "CompletionResponse", "PoolInfo"]


@dataclass
class CompletionRequest:
    """One chat completion, as seed 004 spells it. `extra` carries any other OpenAI parameter
    (`top_p`, `response_format`, `tool_choice`, ...), sent as given."""

    messages: list[dict[str, Any]]
    temperature: float | None = None
    max_tokens: int | None = None
    stream: bool = False
    tools: list[dict[str, Any]] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class CompletionResponse:
    """The answer, or (from `stream`) one piece of it: `content` is the text (a piece's delta),
    `usage` the token counts, `metadata` the rest: pool, request_id, attempts, finish_reason,
    tool_calls, cost."""

    content: str
    model: str
    provider: str
    usage: dict[str, int] = field(default_factory=dict)
    latency_ms: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PoolInfo:
    """A capability pool as the Router shows it: what it targets, how it picks, and each
    member's state now (`models`: model, status, reason, until, requests, failures, ...)."""

    name: str
    capability: str | None
    strategy: str
    models: tuple[dict[str, Any], ...]


class Router:
    """Seed 004's Router over `client` (a MeshClient), or over one made from `config`."""

    def __init__(self, config: Any = None, *, client: Any = None, **client_kwargs: Any) -> None:
        if (config is None) == (client is None):
            raise InvalidArgumentError("Router: give a configuration or client=MeshClient(...), one of them")
        if client is None:
            from .client import MeshClient

            client = MeshClient(config, **client_kwargs)
        elif client_kwargs:
            raise InvalidArgumentError(f"Router: {', '.join(sorted(client_kwargs))} belong to a client it makes; "
                                       "the client given is made already")
        self.client = client

    def __enter__(self) -> Router:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self.client.close()

    def route(self, capability: str, options: RoutingOptions | None = None) -> RoutingDecision:
        """Where a request would go now; nothing is sent and no strategy's state moves."""
        o = options or RoutingOptions()
        return self.client.route(capability, session_id=o.session_id, preferred_provider=o.preferred_provider)

    def complete(self, capability: str, request: CompletionRequest,
                 options: RoutingOptions | None = None) -> CompletionResponse:
        if request.stream:
            raise InvalidArgumentError("Router.complete: the request asks to stream; use Router.stream")
        started = time.perf_counter()
        r = self.client.chat.completions.create(**self._arguments(capability, request, options, "sync"))
        choice = r.choices[0] if r.choices else None
        message = choice.message if choice is not None else None
        metadata = _served(r.mesh)
        if choice is not None:
            metadata["finish_reason"] = choice.finish_reason
        if message is not None and message.tool_calls:
            metadata["tool_calls"] = [c.to_dict() for c in message.tool_calls]
        usage = r.usage.to_dict() if r.usage is not None else {}
        return CompletionResponse(content=(message.content if message is not None else None) or "",
                                  model=r.mesh.model, provider=r.mesh.provider,
                                  usage={k: v for k, v in usage.items() if isinstance(v, int)},
                                  latency_ms=(time.perf_counter() - started) * 1000, metadata=metadata)

    def stream(self, capability: str, request: CompletionRequest,
               options: RoutingOptions | None = None) -> Iterator[CompletionResponse]:
        """The answer in pieces as they come: each piece's `content` is its new text; the last
        one carries `finish_reason` (and `usage` when the provider reports it)."""
        started = time.perf_counter()
        arguments = self._arguments(capability, request, options, "streaming")
        arguments["stream"] = True
        with self.client.chat.completions.create(**arguments) as stream:
            for chunk in stream:
                provider, model = chunk.provider or "", chunk.model or ""
                answered = stream.answered_by
                if answered is not None:
                    provider, model = answered[0], answered[1]
                choice = chunk.choices[0] if chunk.choices else None
                metadata: dict[str, Any] = {"request_id": stream.request_id}
                if choice is not None and choice.finish_reason:
                    metadata["finish_reason"] = choice.finish_reason
                usage = chunk.usage.to_dict() if chunk.usage is not None else {}
                yield CompletionResponse(content=(choice.delta.content if choice is not None else None) or "",
                                         model=model, provider=provider,
                                         usage={k: v for k, v in usage.items() if isinstance(v, int)},
                                         latency_ms=(time.perf_counter() - started) * 1000, metadata=metadata)

    def batch(self, capability: str, requests: Sequence[CompletionRequest], options: RoutingOptions | None = None,
              *, max_concurrency: int | None = None,
              on_progress: Callable[[BatchProgress], Any] | None = None) -> BatchJob:
        """Start `requests` as one batch and return its BatchJob at once (`job.wait()` for the
        end; `job.results` in input order, each with its `custom_id`: the request's
        `metadata["custom_id"]`, else `request-<n>`). By default the mesh runs them,
        `max_concurrency` at a time (8), each with failover across the pool; with
        `RoutingOptions(delivery_mode="batch")` they go to a provider's batch API."""
        if isinstance(requests, (str, bytes)) or not isinstance(requests, Sequence):
            raise InvalidArgumentError(f"Router.batch: 'requests' must be a list of CompletionRequest, got "
                                       f"{type(requests).__name__}")
        o = options or RoutingOptions()
        if o.delivery_mode not in (None, "sync", "batch"):
            raise InvalidArgumentError(f"Router.batch: delivery_mode must be 'sync' (the mesh sends each request) or "
                                       f"'batch' (a provider's batch API), got {o.delivery_mode!r}")
        lines = []
        for i, request in enumerate(requests):
            if not isinstance(request, CompletionRequest):
                raise InvalidArgumentError(f"Router.batch: requests[{i}] must be a CompletionRequest, got "
                                           f"{type(request).__name__}")
            if request.stream:
                raise InvalidArgumentError(f"Router.batch: requests[{i}] asks to stream; a batch's answers are whole")
            body = {k: v for k, v in self._arguments(capability, request, None, "sync").items()
                    if v is not None and k not in _HINTS}
            custom_id = request.metadata.get("custom_id", f"request-{i}")
            lines.append({"custom_id": str(custom_id), "method": "POST", "url": "/v1/chat/completions", "body": body})
        hints = {k: v for k, v in (("session_id", o.session_id), ("preferred_provider", o.preferred_provider),
                                   ("routing_metadata", dict(o.metadata) or None)) if v is not None}
        batches = self.client.batches
        plan = batches._plan("Router.batch", lines, "/v1/chat/completions", None,
                             "batch" if o.delivery_mode == "batch" else None, max_concurrency, on_progress, hints)
        return batches._start(plan)

    def get_pool(self, name: str) -> PoolInfo:
        """The configured pool `name`; KeyError (also a NotFoundError) when there is none."""
        pools = self.client.core.pools
        if name not in pools:
            raise _NoSuchPool(f"no pool named {name!r} (configured: {', '.join(pools) or 'none'})", param="pool")
        return self._info(name, self.client.status()["pools"].get(name, []))

    def list_pools(self) -> list[PoolInfo]:
        rows = self.client.status()["pools"]
        return [self._info(name, rows.get(name, [])) for name in self.client.core.pools]

    # -- helpers ---------------------------------------------------------------------------------
    def _info(self, name: str, rows: list[dict[str, Any]]) -> PoolInfo:
        pool = self.client.core.pools[name]
        return PoolInfo(name=name, capability=pool.config.capability, strategy=pool.strategy.name,
                        models=tuple(dict(row) for row in rows))

    @staticmethod
    def _arguments(capability: str, request: CompletionRequest, options: RoutingOptions | None,
                   mode: str) -> dict[str, Any]:
        if not isinstance(request, CompletionRequest):
            raise InvalidArgumentError(f"Router: 'request' must be a CompletionRequest, got {type(request).__name__}")
        o = options or RoutingOptions()
        arguments: dict[str, Any] = dict(request.extra)
        arguments.update(model=capability, messages=request.messages, temperature=request.temperature,
                         max_tokens=request.max_tokens, tools=request.tools, session_id=o.session_id,
                         preferred_provider=o.preferred_provider, delivery_mode=o.delivery_mode or mode,
                         routing_metadata={**request.metadata, **o.metadata} or None)
        return arguments


class _NoSuchPool(NotFoundError, KeyError):
    """No pool of that name: a NotFoundError, and the KeyError the seed's get_pool raises."""

    def __str__(self) -> str:  # KeyError would quote the message
        return NotFoundError.__str__(self)


def _served(mesh: Any) -> dict[str, Any]:
    return {"pool": mesh.pool, "request_id": mesh.request_id, "attempts": len(mesh.attempts), "cost": mesh.cost}

