"""modelmesh.observability: where the mesh's events, request logs, statistics and traces go.

- Sinks (configured under `observability.connectors`, or made in code): `ConsoleObservability`,
  `FileObservability`, `NullObservability`, `CallbackObservability`, `WebhookObservability`
  (the `webhook` extra), and `BaseObservability` to subclass (override `_write`).
- Prometheus (the `prometheus` extra): `PrometheusMetrics.instrument(client)` counts a client's
  requests; `start_metrics_server(port)` serves them (`client.serve_metrics(port)` does both).
- OpenTelemetry (the `otel` extra): `instrument_opentelemetry(client, tracer_provider=...,
  meter_provider=...)`: a span per request, a child span per attempt, GenAI semantic conventions.

Names from the extras load on first use: `import modelmesh.observability` imports neither
prometheus_client, opentelemetry nor tenacity. See docs/observability.md.
"""
from __future__ import annotations

from typing import Any

from ._base import (
    BaseObservability,
    CallbackObservability,
    ConsoleObservability,
    FileObservability,
    NullObservability,
)
from ._observer import Observer
from ._stats import Statistics

__all__ = [
    "BaseObservability", "ConsoleObservability", "FileObservability", "NullObservability", "CallbackObservability",
    "WebhookObservability", "Observer", "Statistics", "PrometheusMetrics", "start_metrics_server", "render_metrics",
    "OpenTelemetryObservability", "OpenTelemetryListener", "instrument_opentelemetry",
]

_LAZY = {
    "WebhookObservability": "._webhook",
    "PrometheusMetrics": "._prometheus",
    "start_metrics_server": "._prometheus",
    "render_metrics": "._prometheus",
    "OpenTelemetryObservability": "._otel",
    "OpenTelemetryListener": "._otel",
    "instrument_opentelemetry": "._otel",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'modelmesh.observability' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module, __name__), name)
