"""OpenTelemetry: a span per request and one per attempt, by the GenAI semantic conventions, and
the gen_ai.client metrics, for a request that failed over, into in-memory exporters."""
from __future__ import annotations

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import modelmesh
from modelmesh.observability import instrument_opentelemetry
from modelmesh.testing import Error, FakeClock, FakeUpstream

MSG = [{"role": "user", "content": "hi"}]


def cfg(url, **top):
    key = {"auth": {"api_key": "sk-otel-secret-0123456789"}}
    return {"providers": {
        "a": {"connector": "openai", "config": {"base_url": url, **key, "models": ["m1"]}},
        "b": {"connector": "groq", "config": {"base_url": url, **key, "models": ["m2"]}}},
        "pools": {"chat": {"models": ["a/m1", "b/m2"], "strategy": "priority"}}, **top}


@pytest.fixture
def otel():
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    return spans, tracer_provider, reader, MeterProvider(metric_readers=[reader])


def test_a_failed_over_request_is_one_span_with_a_child_per_attempt(otel):
    spans, tracer_provider, reader, meter_provider = otel
    clock = FakeClock()
    with FakeUpstream("openai", models=["m1", "m2"]) as up:
        up.script(Error(429, retry_after=30))
        with modelmesh.MeshClient(cfg(up.url), clock=clock, sleep=clock.sleep, environ={}) as client:
            instrument_opentelemetry(client, tracer_provider=tracer_provider, meter_provider=meter_provider)
            answer = client.chat.completions.create(model="chat", messages=MSG)
    done = spans.get_finished_spans()
    (request,) = [s for s in done if s.parent is None]
    attempts = sorted((s for s in done if s.parent is not None), key=lambda s: s.attributes["modelmesh.attempt"])
    assert request.name == "chat chat" and request.kind is SpanKind.CLIENT
    assert {k: request.attributes[k] for k in (
        "gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.request.model", "gen_ai.response.model",
        "modelmesh.pool", "modelmesh.provider")} == {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "groq", "gen_ai.request.model": "chat",
        "gen_ai.response.model": answer.model, "modelmesh.pool": "chat", "modelmesh.provider": "b"}
    assert request.attributes["gen_ai.usage.input_tokens"] == answer.usage.prompt_tokens
    assert request.attributes["gen_ai.usage.output_tokens"] == answer.usage.completion_tokens
    assert tuple(request.attributes["gen_ai.response.finish_reasons"]) == ("stop",)
    assert [a.parent.span_id for a in attempts] == [request.context.span_id] * 2
    first, second = attempts
    assert first.name == "chat m1" and first.attributes["gen_ai.provider.name"] == "openai"
    assert first.attributes["modelmesh.failover_reason"] == "rate_limited"
    assert first.attributes["error.type"] == "rate_limited" and first.status.status_code is StatusCode.ERROR
    assert second.name == "chat m2" and second.attributes["gen_ai.request.model"] == "m2"
    assert "modelmesh.failover_reason" not in second.attributes and second.status.status_code is StatusCode.UNSET
    assert second.attributes["gen_ai.usage.output_tokens"] == answer.usage.completion_tokens
    assert request.start_time == int(FakeClock().now() * 1e9)  # the events' times, from the client's clock

    points = {m.name: m for rm in reader.get_metrics_data().resource_metrics for sm in rm.scope_metrics
              for m in sm.metrics}
    usage = {p.attributes["gen_ai.token.type"]: p.sum for p in points["gen_ai.client.token.usage"].data.data_points}
    assert usage == {"input": answer.usage.prompt_tokens, "output": answer.usage.completion_tokens}
    assert points["gen_ai.client.token.usage"].unit == "{token}"
    (duration,) = points["gen_ai.client.operation.duration"].data.data_points
    assert duration.count == 1 and duration.attributes["gen_ai.provider.name"] == "groq"


def test_a_failed_request_ends_its_spans_with_the_error_type(otel):
    spans, tracer_provider, reader, meter_provider = otel
    clock = FakeClock()
    with FakeUpstream("openai", models=["m1", "m2"]) as up:
        up.script(Error(400, message="bad request"))
        with modelmesh.MeshClient(cfg(up.url), clock=clock, sleep=clock.sleep, environ={}) as client:
            instrument_opentelemetry(client, tracer_provider=tracer_provider, meter_provider=meter_provider)
            with pytest.raises(modelmesh.ModelMeshError):
                client.chat.completions.create(model="chat", messages=MSG)
    (request,) = [s for s in spans.get_finished_spans() if s.parent is None]
    assert request.status.status_code is StatusCode.ERROR and request.attributes["error.type"]
    assert "sk-otel-secret" not in str(request.attributes) and "bad request" not in str(request.attributes)
    (duration,) = [m for rm in reader.get_metrics_data().resource_metrics for sm in rm.scope_metrics
                   for m in sm.metrics if m.name == "gen_ai.client.operation.duration"]
    assert duration.data.data_points[0].attributes["error.type"] == request.attributes["error.type"]


def test_the_opentelemetry_connector_from_configuration_builds_on_the_global_providers():
    with FakeUpstream("openai", models=["m1", "m2"]) as up:
        with modelmesh.MeshClient(cfg(up.url, observability={"connector": "opentelemetry"}), environ={}) as client:
            assert client.chat.completions.create(model="chat", messages=MSG).choices  # no-op providers: no error
        with pytest.raises(modelmesh.ConfigurationError, match=r"config.endpoint: unknown key"):
            modelmesh.MeshClient(cfg(up.url, observability={"connector": "opentelemetry",
                                                            "config": {"endpoint": "x"}}), environ={})
