"""MeshClient: an OpenAI-shaped client in front of the mesh.

`client.chat.completions.create(...)`, `client.embeddings.create(...)`,
`client.models.list()`, `client.audio...` and `client.images...` (`_media.py`) take the
OpenAI SDK's arguments; `model` names a pool, a
capability (`"chat-completion"`), a `provider/model-id` or a bare model id. Every OpenAI
parameter is passed through to the provider's codec; None values are left out (as the
SDK leaves out NOT_GIVEN). Three routing hints are ours: `session_id`,
`preferred_provider`, `routing_metadata`.

One client is meant to be shared by every thread of a process (a Django or Flask app,
gunicorn gthread workers): the core holds its lock around shared health only; parsing and I/O run
outside it, in the caller's thread.
"""
from __future__ import annotations

import abc
import copy
import logging
import os
import random
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from ._core import _errors as E
from ._core._config_schema import MeshConfig
from ._core._mesh import RoutingDecision, RoutingOptions
from ._core._policies import PolicySet
from ._response import ChatCompletion, ChatCompletionChunk, CreateEmbeddingResponse, Model, SyncPage, as_plain
from ._views import _RawCalls, _Resource, _served, _StreamView

__all__ = ["MeshClient", "ChatStream"]

class _MeshBase(abc.ABC):
    """What MeshClient and AsyncMeshClient share: the mesh built from configuration, events,
    routing and state, per-request options and the arguments of a request. A subclass adds
    its transport and the resources of its kind (`_resources`)."""

    transport: Any

    def _setup(self, config: Any, base_url: str | None, api_key: str | None, organization: str | None,
               project: str | None, clock: Callable[[], float] | None, seed: int | None, rng: random.Random | None,
               on_event: Callable[[Any], None] | None, strategies: Mapping[str, Callable] | None,
               environ: Mapping[str, str] | None, policies: Mapping[str, PolicySet] | None) -> dict[str, Any]:
        """Build the mesh; returns the arguments every transport takes besides its own."""
        from ._build import build

        env = os.environ if environ is None else environ
        name = type(self).__name__
        if config is None:
            config = _one_provider(base_url, api_key, organization, project, env, name)
        elif any(v is not None for v in (base_url, api_key, organization, project)):
            raise E.ConfigurationError([f"{name}(): pass either config= or base_url=/api_key=/organization=/"
                                        "project= (a one-provider mesh), not both"])
        built = build(config, environ=environ, strategies=strategies, policies=policies, rng=rng, seed=seed,
                      lock=threading.Lock())  # the core holds it around shared health only
        self.config = built.config
        self.core = built.core
        self._clock = clock or time.time
        self._sinks: list[Any] = []
        from .observability._observer import Observer  # the four interfaces over the configured sinks

        self.observer = Observer(built.sinks, built.config.observability, secrets=built.secret_values,
                                 clock=self._clock, mesh_config=built.config)
        self._listeners: list[Callable[[Any], None]] = [self.observer.on_event] if built.sinks else []
        if on_event:
            self._listeners.append(on_event)
        # with nobody listening, requests build no events; a recording holds them
        self.core.listening = bool(self._listeners) or built.recorder is not None
        if built.recorder is not None:
            self._sinks.append(built.recorder)  # closed with the sinks
        _name_requests(self.core)
        shared = None
        if built.storage is not None:
            from .transports._shared import SharedHealth

            storage_cfg = built.config.storage
            shared = SharedHealth(self.core, built.storage, built.serializer,
                                  clock=self._clock, lock_timeout=storage_cfg.locking_timeout, emit=self._dispatch_all)
        self._defaults = _Defaults()
        from .connectors.secrets import SecretRefresher

        refresher = SecretRefresher.for_client(self.core, built.secret_store, built.config, clock=self._clock)
        return {"clock": self._clock, "environ": environ, "shared": shared, "secrets": refresher,
                "discovery": built.discovery,
                "sync_policy": built.config.storage.sync_policy,
                "sync_interval": built.config.storage.sync_interval, "on_event": self._dispatch}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(providers={list(self.core.providers)!r}, pools={list(self.core.pools)!r})"

    @abc.abstractmethod
    def _resources(self) -> None:
        """Make the resources (`chat`, `embeddings`, `models`, ...): each client class its own."""

    # -- observability ----------------------------------------------------------------------
    def subscribe(self, listener: Callable[[Any], None]) -> None:
        """Call `listener(event)` for every mesh event (routed, failed, deactivated, ...)."""
        self._listeners.append(listener)
        self.core.listening = True

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
        the store, the sync policy, when health was last exchanged and whether the store answers;
        with observability sinks, also `observability`: each sink's state and what it lost."""
        out = self.core.snapshot(self._clock())
        shared = self.transport.shared
        if shared is not None:
            out["storage"] = dict(shared.describe(), sync_policy=self.config.storage.sync_policy)
        if self.observer.sinks:
            out["observability"] = self.observer.status()
        if self._jobs is not None:
            out["from_job"] = self._jobs.view()
        return out

    def usage(self, days: int = 7) -> list[dict[str, Any]]:
        """Per provider and UTC day, the last `days` days (today included): requests served,
        prompt and completion tokens, cost in USD, as this process counted them."""
        return self.core.usage(self._clock(), _days(days))

    def _follow_jobs(self) -> None:
        """Take the `from_job` models out until their jobs succeed (`_jobwatch.py`), checked each
        background round; only a configuration with such a model loads the module."""
        self._jobs: Any = None
        if any(m.from_job for p in self.config.providers.values() for m in p.models):
            from ._jobwatch import JobWatch

            self._jobs = JobWatch.for_client(self)

    def statistics(self) -> list[dict[str, Any]]:
        """Requests, tokens, cost, latency percentiles and downtime per model, provider and
        pool (`observability.statistics.scopes`) over the retained windows, as of now."""
        stats = self.observer.statistics
        return stats.view(self._clock()) if stats is not None else []

    def flush_statistics(self) -> list[dict[str, Any]]:
        """Close the statistics window now and hand its rows to every sink's `flush`
        (done every `observability.statistics.flush_interval` by itself); returns them."""
        return self.observer.flush_statistics()

    def serve_metrics(self, port: int, addr: str = "127.0.0.1") -> Any:
        """Count this client's requests in Prometheus metrics and serve them on
        `http://addr:port/metrics` (the `prometheus` extra); returns the server, whose
        `shutdown()` stops it. See docs/observability.md for several worker processes."""
        from .observability import PrometheusMetrics, start_metrics_server

        if getattr(self, "_prometheus", None) is None:  # counted once, however often served
            self._prometheus = PrometheusMetrics.instrument(self)
        return start_metrics_server(port, addr)

    def _observe(self, listener: Any) -> None:
        """Feed `listener` (with `on_event` and optionally `finished`) this client's events."""
        self.subscribe(listener.on_event)
        if callable(getattr(listener, "finished", None)):
            self.observer.finish_listeners.append(listener.finished)
            self._hook_finished()

    def _hook_finished(self) -> None:
        if self.observer.sinks or self.observer.finish_listeners:  # else the drive loop skips the call
            self.transport.driver.on_finished = self.observer.on_finished

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

    # -- per-request options ----------------------------------------------------------------------
    def with_options(self, *, timeout: float | None = None, max_retries: int | None = None,
                     default_headers: Mapping[str, str] | None = None,
                     default_query: Mapping[str, Any] | None = None, **other: Any) -> Any:
        """This client with other defaults for its requests, as the OpenAI SDK's `with_options`:
        `timeout` (seconds for the whole request), `max_retries` (same-model retries; failing
        over to another model is not a retry and is not limited by it), `default_headers` and
        `default_query` (sent with every attempt). The copy shares everything else: the
        mesh, its health, its connections. `api_key`, `base_url` and the like belong to the
        configuration and are refused."""
        if other:
            names = ", ".join(sorted(other))
            raise E.InvalidArgumentError(f"with_options: {names} cannot be set per client copy; the configuration "
                                         "decides providers, keys and URLs (timeout, max_retries, default_headers "
                                         "and default_query can)")
        base = self._defaults
        defaults = _Defaults(
            timeout=base.timeout if timeout is None else _timeout("with_options", timeout),
            max_retries=base.max_retries if max_retries is None else _max_retries(max_retries),
            headers={**base.headers, **_headers_arg("with_options: 'default_headers'", default_headers)},
            query={**base.query, **_query_arg("with_options: 'default_query'", default_query)},
        )
        clone = copy.copy(self)
        clone._defaults = defaults
        clone._resources()
        return clone

    copy = with_options  # the SDK's other name for it

    # -- requests ----------------------------------------------------------------------------------
    def _prepare(self, op: str, kwargs: dict[str, Any], stream: bool) -> tuple[dict[str, Any], str, RoutingOptions]:
        """(body, model, options) of a request from the SDK's arguments: ours taken out, None
        values left out, `extra_body` merged, response objects given back made plain."""
        model = kwargs.pop("model", None)
        if not model:
            raise E.InvalidArgumentError(f"{op}: 'model' is required (a pool, capability or model id)")
        defaults = self._defaults
        timeout = kwargs.pop("timeout", None)
        timeout = defaults.timeout if timeout is None else _timeout(op, timeout)
        headers = kwargs.pop("extra_headers", None)
        query = kwargs.pop("extra_query", None)
        delivery = _delivery_mode(op, kwargs.pop("delivery_mode", None), stream)
        options = RoutingOptions(
            delivery_mode=delivery,
            session_id=kwargs.pop("session_id", None),
            preferred_provider=kwargs.pop("preferred_provider", None),
            metadata=kwargs.pop("routing_metadata", None) or {},
            timeout=timeout,
            max_retries=defaults.max_retries,
            extra_headers={**defaults.headers, **_headers_arg(f"{op}: 'extra_headers'", headers)}
            if headers or defaults.headers else _NO_EXTRAS,
            extra_query={**defaults.query, **_query_arg(f"{op}: 'extra_query'", query)}
            if query or defaults.query else _NO_EXTRAS,
        )
        extra = kwargs.pop("extra_body", None) or {}
        body = {k: v for k, v in kwargs.items() if v is not None}
        body.update(extra)
        body = as_plain(body)  # response objects (ours, the SDK's) given back, as the SDK takes its own
        body["model"] = model
        if stream:
            body["stream"] = True
        return body, model, options


class MeshClient(_MeshBase):
    """The OpenAI-shaped client. `config` is a path to YAML/JSON, a dict, or a MeshConfig."""

    def __init__(
        self,
        config: str | os.PathLike | Mapping[str, Any] | MeshConfig | None = None,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        organization: str | None = None,
        project: str | None = None,
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
        (started by the first request, stopped by `close()`) looks for due recovery probes.

        Without `config`, the client is a mesh of one OpenAI-compatible provider, made as
        `openai.OpenAI(...)` is: `base_url` (else OPENAI_BASE_URL, else OpenAI's API),
        `api_key` (else OPENAI_API_KEY), `organization` and `project` (else OPENAI_ORG_ID,
        OPENAI_PROJECT_ID); any model name is sent to it as given."""
        from .transports.sync import SyncTransport

        common = self._setup(config, base_url, api_key, organization, project, clock, seed, rng, on_event, strategies,
                             environ, policies)
        self.transport = SyncTransport(self.core, sleep=sleep or time.sleep, session=session,
                                       probe_check_interval=probe_check_interval, **common)
        self._hook_finished()
        self._follow_jobs()
        if self._jobs is not None:
            self.transport.round_hooks.append(self._jobs.check)
        self._resources()

    def __enter__(self) -> MeshClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self.transport.close()
        self.observer.close()  # the last statistics, then every sink flushed and closed
        for sink in self._sinks:
            sink.close()

    def sync(self) -> bool:
        """Exchange model and provider standbys with the other processes sharing `storage` now
        (a sync policy does it by itself). False without shared storage or when it cannot be
        reached; never raises."""
        return self.transport.sync()

    def run_probes(self) -> int:
        """Send the due recovery probes now, in this thread; returns how many were sent. The
        background probe thread does this every `probe_check_interval`; requests never do."""
        return self.transport.run_probes()

    def run_discovery(self) -> int:
        """Fetch the model listings the registry sync wants now (discovery.sync,
        catalogue.auto_discover) and the quota and price queries due (quota.query_*,
        pricing.query), in this thread, and apply them; returns how many were fetched. The
        background thread does this by itself; requests never do."""
        return self.transport.run_discovery()

    def check_jobs(self) -> int:
        """Ask how the fine-tuning jobs of the `from_job` models stand now, in this thread (the
        background thread does it every minute by itself); a model whose job has succeeded
        serves from then on. Returns how many jobs were asked about."""
        return self._jobs.check(force=True) if self._jobs is not None else 0

    def _resources(self) -> None:
        from ._batch import Batches  # here, not at import: `import modelmesh` stays lean
        from ._files import Files, FineTuning
        from ._media import Audio, Images

        self.chat = _Chat(self)
        self.embeddings = _Embeddings(self)
        self.models = _Models(self)
        self.audio = Audio(self)
        self.images = Images(self)
        self.batches = Batches(self)
        self.files = Files(self)
        self.fine_tuning = FineTuning(self)
        self.with_raw_response = _ClientRaw(self)

    def _request(self, op: str, kwargs: dict[str, Any], stream: bool, view: Callable[[Any], Any] | None = None) -> Any:
        """Send a request; a stream comes back as `view(handle)` (a ChatStream unless told)."""
        body, model, options = self._prepare(op, kwargs, stream)
        call = self.transport.start(op, body, model=model, stream=stream, options=options)
        if stream:
            return (view or ChatStream)(self.transport.stream(call))
        return self.transport.execute(call)


_NO_EXTRAS: Mapping[str, str] = {}

# the cores whose request ids name this process: renamed in a forked child (gunicorn --preload,
# the proxy's workers), so no two workers' logs or x-request-id headers share an id
_NAMED: weakref.WeakSet[Any] = weakref.WeakSet()


def _request_prefix() -> str:
    return f"mm-{os.getpid():x}-"


def _name_requests(core: Any) -> None:
    core.request_prefix = _request_prefix()
    _NAMED.add(core)


def _renamed_after_fork() -> None:
    prefix = _request_prefix()
    for core in list(_NAMED):
        core.request_prefix = prefix


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_renamed_after_fork)


def _one_provider(base_url: str | None, api_key: str | None, organization: str | None, project: str | None,
                  env: Mapping[str, str], name: str = "MeshClient") -> dict[str, Any]:
    """The configuration of `MeshClient(base_url=..., api_key=...)`: the SDK's arguments and
    variables, one provider whose catalogue is open (it serves whatever model is named)."""
    key = api_key if api_key is not None else env.get("OPENAI_API_KEY")
    if not key:
        raise E.ConfigurationError([f"{name}(): no configuration and no API key: pass config=, or api_key= "
                                    "(or set OPENAI_API_KEY) for a one-provider mesh as openai.OpenAI() makes"])
    url = base_url or env.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
    headers = {name: value for name, value in (("OpenAI-Organization", organization or env.get("OPENAI_ORG_ID")),
                                               ("OpenAI-Project", project or env.get("OPENAI_PROJECT_ID"))) if value}
    provider: dict[str, Any] = {"base_url": url, "auth": {"api_key": key}, "catalogue": {"open": True}}
    if headers:
        provider["headers"] = headers
    return {"providers": {"openai": {"connector": "openai", "config": provider}}}


@dataclass(frozen=True)
class _Defaults:
    """What `with_options` sets for every request of a client copy."""

    timeout: float | None = None
    max_retries: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)


def _delivery_mode(op: str, value: Any, stream: bool) -> str | None:
    """Seed 004's routing hint, checked against the call it comes with: `sync` for a plain call,
    `streaming` for `stream=True`. Batch delivery is a batch's: `client.batches.create`."""
    if value is None:
        return None
    if value == "batch":
        raise E.InvalidArgumentError(f"{op}: delivery_mode 'batch' is not available on a single request; send a "
                                     "batch with client.batches.create(input=[...], delivery_mode='batch') or "
                                     "Router.batch(...)")
    expected = "streaming" if stream else "sync"
    if value != expected:
        raise E.InvalidArgumentError(f"{op}: delivery_mode must be 'sync' or 'streaming', the one this call is "
                                     f"({expected!r}), got {value!r}")
    return str(value)


def _timeout(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise E.InvalidArgumentError(f"{where}: 'timeout' must be a positive number of seconds, got {value!r}")
    return float(value)


def _max_retries(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise E.InvalidArgumentError(f"with_options: 'max_retries' must be a whole number >= 0, got {value!r}")
    return value


def _headers_arg(where: str, value: Any) -> Mapping[str, str]:
    if not value:
        return _NO_EXTRAS
    from ._core._config_read import ItemErrors, as_headers

    try:
        return as_headers(value)
    except ItemErrors as exc:  # each names its header, never its value
        problems = "; ".join(f"{name}: {problem}" if name else problem for name, problem in exc.items)
        raise E.InvalidArgumentError(f"{where}: {problems}") from None
    except ValueError as exc:
        raise E.InvalidArgumentError(f"{where}: {exc}") from None


def _query_arg(where: str, value: Any) -> Mapping[str, str]:
    if not value:
        return _NO_EXTRAS
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and k for k in value):
        raise E.InvalidArgumentError(f"{where}: expected a mapping of parameter name to value")
    bad = [k for k, v in value.items() if isinstance(v, (dict, list, tuple, set)) or v is None]
    if bad:
        raise E.InvalidArgumentError(f"{where}: '{bad[0]}' must be a string or a number")
    return {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in value.items()}


class ChatStream(_StreamView):
    """An iterator of ChatCompletionChunk; `mesh` (ServedBy) is set once the stream has ended.

    Made by `create(stream=True)`, which has already waited for the first chunk: an error
    before any content (every model refused, the pool is exhausted) is raised by `create()`,
    as the OpenAI SDK raises a stream's HTTP error there."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle
        self.mesh = None
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
            self._ended()
            raise
        return ChatCompletionChunk(item.chunk)

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._handle.close()


class _Completions(_Resource):
    def create(self, *, stream: bool = False, **kwargs: Any) -> ChatCompletion | ChatStream:
        _need("chat.completions.create", "messages", kwargs)
        result = self._client._request("chat", kwargs, bool(stream))
        return result if stream else ChatCompletion(result.response, _served(result))

    def parse(self, *, response_format: Any, **kwargs: Any) -> ChatCompletion:
        """The SDK's `chat.completions.parse`: `response_format` is a pydantic model class; its
        schema is sent as a strict `json_schema` response format, and each choice's
        `message.parsed` is that model built from the answer (None when the model refused,
        `message.refusal` saying why). An answer cut at its token limit raises
        LengthFinishReasonError, one the content filter stopped ContentFilterFinishReasonError,
        and JSON that does not fit the model pydantic's ValidationError, as the SDK does."""
        validate = _parse_request(response_format, kwargs)
        completion = self.create(**kwargs)
        assert isinstance(completion, ChatCompletion)
        return _parsed(completion, validate)


def _need(where: str, name: str, kwargs: Mapping[str, Any]) -> None:
    if name not in kwargs:
        raise E.InvalidArgumentError(f"{where}: '{name}' is required")


def _parse_request(response_format: Any, kwargs: dict[str, Any]) -> Callable[[str], Any]:
    """Check `parse`'s arguments and set the strict JSON schema response format in `kwargs`;
    returns the model's validator."""
    validate = getattr(response_format, "model_validate_json", None)
    schema_of = getattr(response_format, "model_json_schema", None)
    if not isinstance(response_format, type) or not callable(validate) or not callable(schema_of):
        raise E.InvalidArgumentError("chat.completions.parse: 'response_format' must be a pydantic model class "
                                     f"(pydantic 2), got {response_format!r}; for a JSON schema of your own, "
                                     "pass it to create(response_format=...)")
    if kwargs.get("stream"):
        raise E.InvalidArgumentError("chat.completions.parse: 'stream' is not supported; parse a streamed "
                                     "answer's text yourself")
    from ._schema import strict_schema

    kwargs["response_format"] = {"type": "json_schema", "json_schema": {
        "name": response_format.__name__, "schema": strict_schema(schema_of()), "strict": True}}
    return validate


def _parsed(completion: ChatCompletion, validate: Callable[[str], Any]) -> ChatCompletion:
    for choice in completion.choices:
        if choice.finish_reason == "length":
            raise E.LengthFinishReasonError("chat.completions.parse: the answer reached its token limit before "
                                            "its JSON was complete; raise max_tokens", completion=completion)
        if choice.finish_reason == "content_filter":
            raise E.ContentFilterFinishReasonError("chat.completions.parse: the provider's content filter "
                                                   "stopped the answer")
        message = choice.message
        message.parsed = validate(message.content) if message.content and not message.refusal else None
    return completion


class _Chat:
    def __init__(self, client: MeshClient) -> None:
        self.completions = _Completions(client)


class _Embeddings(_Resource):
    def create(self, **kwargs: Any) -> CreateEmbeddingResponse:
        _need("embeddings.create", "input", kwargs)
        result = self._client._request("embeddings", kwargs, False)
        return CreateEmbeddingResponse(result.response, _served(result))


class _Models(_Resource):
    def list(self) -> SyncPage:
        """Every configured model (`provider/model-id`) and every pool, as a page of OpenAI model
        objects; iterating it gives the models."""
        return _models_page(self._client.core)

    def retrieve(self, model: str) -> Model:
        """One model or pool of `list()`, by its id; NotFoundError (404) for any other id."""
        return _model(self._client.core, model)


def _models_page(core: Any) -> SyncPage:
    return SyncPage({"object": "list", "data": _model_entries(core)})


def _model(core: Any, model: Any) -> Model:
    if not isinstance(model, str) or not model:
        raise E.InvalidArgumentError(f"models.retrieve: expected a model id, got {model!r}")
    for entry in _model_entries(core):
        if entry["id"] == model:
            return Model(entry)
    raise E.NotFoundError(f"models.retrieve: '{model}' is neither a pool nor a configured model", param="model")


def _model_entries(core: Any) -> list[dict[str, Any]]:
    data = [{"id": ref, "object": "model", "created": 0, "owned_by": m.provider,
             "capabilities": list(m.capabilities)} for ref, m in core.models.items()]
    data += [{"id": name, "object": "model", "created": 0, "owned_by": "modelmesh",
              "capabilities": [p.config.capability] if p.config.capability else []}
             for name, p in core.pools.items()]
    return data


class _ClientRaw:
    """`client.with_raw_response.chat.completions.create(...)`, as the SDK spells it too."""

    def __init__(self, client: Any) -> None:
        self.chat = _RawChat(client.chat)
        self.embeddings = _RawCalls(client.embeddings)
        self.models = _RawCalls(client.models)
        self.audio = _RawAudio(client.audio)
        self.images = _RawCalls(client.images)


class _RawAudio:
    def __init__(self, audio: Any) -> None:
        self.speech = _RawCalls(audio.speech)
        self.transcriptions = _RawCalls(audio.transcriptions)
        self.translations = _RawCalls(audio.translations)


class _RawChat:
    def __init__(self, chat: Any) -> None:
        self.completions = _RawCalls(chat.completions)


def _days(days: Any) -> int:
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 62:
        raise E.InvalidArgumentError(f"usage: 'days' must be a whole number from 1 to 62, got {days!r}", param="days")
    return days
