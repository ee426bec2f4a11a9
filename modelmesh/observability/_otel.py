"""OpenTelemetry: a span per request, a child span per attempt, and the GenAI client metrics.

Theory of operation. Built from the events the core already emits, with nothing changed in
the core: `request_routed` opens an attempt, `attempt_failed` closes it with its error kind,
`request_completed` / `request_failed` close the last attempt and the request. The spans are
made when the drive loop reports the call finished (`finished`, after its last event, with
the operation, the answer's model and finish reasons, which no event carries), with the
start and end times the events carry (the client's clock), as children of the context
current in the thread that finishes the request (the caller's: a web framework's server
span becomes the parent).

Names and attributes follow the OpenTelemetry GenAI semantic conventions (development status):
spans are `{gen_ai.operation.name} {gen_ai.request.model}`, kind CLIENT, with
`gen_ai.operation.name`, `gen_ai.provider.name` (the well-known name of the provider's
connector: openai, anthropic, gcp.gemini, ...), `gen_ai.request.model`, `gen_ai.response.model`,
`gen_ai.usage.input_tokens`/`output_tokens`, `gen_ai.response.finish_reasons` and `error.type`,
plus `modelmesh.pool`, `modelmesh.provider` (the configured provider id), `modelmesh.attempt`
and `modelmesh.failover_reason` (on an attempt that failed and was moved on from). Metrics:
`gen_ai.client.token.usage` ({token}, by `gen_ai.token.type` input/output) and
`gen_ai.client.operation.duration` (s), with the semconv's bucket boundaries.
"""
from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import metrics as otel_metrics
from opentelemetry import trace as otel_trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from .._core._config_schema import ObservabilityConfig
from .._core._events import AttemptFailed, RequestCompleted, RequestFailed, RequestRouted
from ._base import BaseObservability

__all__ = ["OpenTelemetryListener", "OpenTelemetryObservability", "instrument_opentelemetry", "PROVIDER_NAMES"]

# our connector -> gen_ai.provider.name's well-known value (others pass through as they are)
PROVIDER_NAMES = {
    "openai": "openai", "openai-compatible": "openai", "anthropic": "anthropic", "gemini": "gcp.gemini",
    "google": "gcp.gemini", "azure": "azure.ai.openai", "azure-openai": "azure.ai.openai", "groq": "groq",
    "mistral": "mistral_ai", "deepseek": "deepseek", "xai": "x_ai", "perplexity": "perplexity",
    "cohere": "cohere", "bedrock": "aws.bedrock", "vertex": "gcp.vertex_ai",
}
_OPERATIONS = {"chat": "chat", "embeddings": "embeddings", "completions": "text_completion"}
_TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864]
_DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]
_SCOPE = "modelmesh"
_MAX_OPEN = 10000


def _ns(at: float) -> int:
    return int(at * 1e9)


@dataclass(slots=True)
class _Attempt:
    n: int
    provider: str
    model: str
    start: float
    end: float | None = None
    error: str | None = None


@dataclass(slots=True)
class _Request:
    pool: str
    start: float
    attempts: list[_Attempt] = field(default_factory=list)
    op: str = "chat"
    response_model: str | None = None
    finish_reasons: tuple[str, ...] = ()
    end: Any = None  # its RequestCompleted or RequestFailed


class OpenTelemetryListener:
    def __init__(self, tracer_provider: Any = None, meter_provider: Any = None,
                 connectors: Mapping[str, str] | None = None) -> None:
        self.tracer = otel_trace.get_tracer(_SCOPE, tracer_provider=tracer_provider)
        meter = otel_metrics.get_meter(_SCOPE, meter_provider=meter_provider)
        self.token_usage = meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}", description="Number of input and output tokens used",
            explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS)
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration", unit="s", description="GenAI operation duration",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS)
        self.connectors = dict(connectors or {})
        self._lock = threading.Lock()
        self._open: dict[str, _Request] = {}

    def bind_config(self, config: Any) -> None:
        """Learn each provider's connector (for gen_ai.provider.name) from the mesh's config."""
        self.connectors.update({pid: p.connector for pid, p in config.providers.items()})

    def _provider_name(self, provider: str) -> str:
        connector = self.connectors.get(provider, provider)
        return PROVIDER_NAMES.get(connector, connector)

    # -- inputs -------------------------------------------------------------------------------
    def finished(self, call: Any, outcome: Any) -> None:
        """The call's end, after all its events: what no event carries (operation, answer
        model, finish reasons); the spans are made here."""
        with self._lock:
            req = self._open.pop(call.request_id, None)
        if req is None:  # no attempt was made (refused before routing): nothing to trace
            return
        req.op = _OPERATIONS.get(call.op, call.op)
        response = getattr(outcome, "response", None)
        if isinstance(response, Mapping):
            model = response.get("model")
            req.response_model = model if isinstance(model, str) else None
            choices = response.get("choices")
            if isinstance(choices, list):
                req.finish_reasons = tuple(str(c.get("finish_reason")) for c in choices
                                           if isinstance(c, Mapping) and c.get("finish_reason"))
        end = req.end
        if end is None:  # walked away from (a stream closed early): no final event
            end = RequestFailed(at=max(a.end or a.start for a in req.attempts) if req.attempts else req.start,
                                request_id=call.request_id, pool=req.pool, error=type(outcome.error).__name__,
                                attempts=len(req.attempts))
        self._spans(req, end)

    def on_event(self, event: Any) -> None:
        kind = type(event)
        if kind is RequestRouted:
            with self._lock:
                req = self._open.get(event.request_id)
                if req is None:
                    if len(self._open) >= _MAX_OPEN:  # calls driven outside the drive loop never finish here
                        self._open.pop(next(iter(self._open)))
                    req = self._open[event.request_id] = _Request(pool=event.pool, start=event.at)
                if req.attempts and req.attempts[-1].end is None:  # a same-model retry without a failure event
                    req.attempts[-1].end = event.at
                req.attempts.append(_Attempt(n=event.attempt, provider=event.provider, model=event.model,
                                             start=event.at))
        elif kind is AttemptFailed:
            with self._lock:
                req = self._open.get(event.request_id)
                if req is not None and req.attempts:
                    req.attempts[-1].end, req.attempts[-1].error = event.at, event.kind
        elif kind is RequestCompleted or kind is RequestFailed:
            with self._lock:
                req = self._open.get(event.request_id)
                if req is not None:
                    req.end = event

    # -- output ---------------------------------------------------------------------------------
    def _spans(self, req: _Request, end: Any) -> None:
        ok = type(end) is RequestCompleted
        asked = req.pool
        common = {"gen_ai.operation.name": req.op, "modelmesh.pool": req.pool}
        attrs: dict[str, Any] = {**common, "gen_ai.request.model": asked, "modelmesh.attempts": len(req.attempts)}
        if ok:
            attrs.update({"gen_ai.provider.name": self._provider_name(end.provider), "modelmesh.provider": end.provider,
                          "gen_ai.response.model": req.response_model or end.model,
                          "gen_ai.usage.input_tokens": end.prompt_tokens,
                          "gen_ai.usage.output_tokens": end.completion_tokens, "modelmesh.cost_usd": end.cost})
            if req.finish_reasons:
                attrs["gen_ai.response.finish_reasons"] = list(req.finish_reasons)
        else:
            attrs["error.type"] = _error_type(end.error)
        span = self.tracer.start_span(f"{req.op} {asked}", kind=SpanKind.CLIENT, attributes=attrs,
                                      start_time=_ns(req.start))
        parent = otel_trace.set_span_in_context(span)
        for i, a in enumerate(req.attempts):
            last = i == len(req.attempts) - 1
            a_attrs: dict[str, Any] = {**common, "gen_ai.provider.name": self._provider_name(a.provider),
                                       "gen_ai.request.model": a.model, "modelmesh.provider": a.provider,
                                       "modelmesh.attempt": a.n}
            if a.error is not None:
                a_attrs["error.type"] = a.error
                if not last or ok:
                    a_attrs["modelmesh.failover_reason"] = a.error
            elif last and ok:
                a_attrs.update({"gen_ai.response.model": req.response_model or a.model,
                                "gen_ai.usage.input_tokens": end.prompt_tokens,
                                "gen_ai.usage.output_tokens": end.completion_tokens})
                if req.finish_reasons:
                    a_attrs["gen_ai.response.finish_reasons"] = list(req.finish_reasons)
            child = self.tracer.start_span(f"{req.op} {a.model}", context=parent, kind=SpanKind.CLIENT,
                                           attributes=a_attrs, start_time=_ns(a.start))
            if a.error is not None or (last and not ok):
                child.set_status(Status(StatusCode.ERROR, a.error or attrs.get("error.type")))
            child.end(end_time=_ns(a.end if a.end is not None else end.at))
        if not ok:
            span.set_status(Status(StatusCode.ERROR, attrs["error.type"]))
        span.end(end_time=_ns(end.at))
        self._metrics(req, end, ok)

    def _metrics(self, req: _Request, end: Any, ok: bool) -> None:
        attrs: dict[str, Any] = {"gen_ai.operation.name": req.op, "gen_ai.request.model": req.pool,
                                 "modelmesh.pool": req.pool}
        if ok:
            attrs.update({"gen_ai.provider.name": self._provider_name(end.provider),
                          "gen_ai.response.model": req.response_model or end.model})
            self.token_usage.record(end.prompt_tokens, {**attrs, "gen_ai.token.type": "input"})
            self.token_usage.record(end.completion_tokens, {**attrs, "gen_ai.token.type": "output"})
        else:
            attrs["error.type"] = _error_type(end.error)
        self.duration.record(max(0.0, end.at - req.start), attrs)


def _error_type(error: str) -> str:
    """`request_failed`'s error is "ErrorName: message": its name alone (no text, no secret)."""
    return error.split(":", 1)[0].strip() or "error"


def instrument_opentelemetry(client: Any, *, tracer_provider: Any = None, meter_provider: Any = None
                             ) -> OpenTelemetryListener:
    """Trace `client`'s requests (the global providers unless given); returns the listener."""
    listener = OpenTelemetryListener(tracer_provider, meter_provider)
    listener.bind_config(client.config)
    client._observe(listener)
    return listener


class OpenTelemetryObservability(BaseObservability):
    """`connector: opentelemetry`: spans and metrics through the global tracer and meter
    providers (set up by the application, or by opentelemetry-instrument)."""

    name = "opentelemetry"

    def __init__(self, config: Mapping[str, Any] | None = None, *, settings: ObservabilityConfig | None = None,
                 secrets: Any = ()) -> None:
        super().__init__(config, settings=settings, secrets=secrets)
        if self.config:
            raise ValueError(f"config.{sorted(self.config)[0]}: unknown key for the 'opentelemetry' connector "
                             "(it takes none: configure OpenTelemetry itself, e.g. with OTEL_* variables)")
        self.listener = OpenTelemetryListener()
        self.bind_config = self.listener.bind_config
        self.finished = self.listener.finished

    def emit(self, event: Any) -> None:  # every event: a filtered one would leave a span open
        if not isinstance(event, Mapping):
            self.listener.on_event(event)

    def log(self, record: Mapping[str, Any]) -> None:
        return None

    def flush(self, rows: Any = ()) -> None:
        return None

    def trace(self, entry: Mapping[str, Any]) -> None:
        return None
