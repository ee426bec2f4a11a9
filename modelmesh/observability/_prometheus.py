"""Prometheus metrics of a client's requests, with prometheus_client (the `prometheus` extra).

Theory of operation. `PrometheusMetrics` holds one prometheus_client metric per family of
`_families.FAMILIES`, registered once per process (a second client in the process feeds the
same metrics: pools, providers and models are labels). `PrometheusMetrics.instrument(client)`
subscribes a `MetricFeed` of that client to them; `start_metrics_server(port)` serves them;
`render_metrics()` returns the exposition text for an app's own `/metrics` route.

Several worker processes (gunicorn, uWSGI): prometheus_client's multiprocess mode. Set
`PROMETHEUS_MULTIPROC_DIR` to an empty directory in the environment of the server *before it
starts* (prometheus_client reads it at import); each worker then writes its counters and
histograms to memory-mapped files there, and `render_metrics()` / `start_metrics_server()`
sum every worker's files (a `MultiProcessCollector`), dead workers' counts included. Every
family here is a counter or a histogram, so no gauge aggregation mode has to be chosen.
Serve from one place only: `render_metrics()` in a route of the app (any worker answers with
the sum), or `start_metrics_server` in the gunicorn master (`when_ready` hook). Empty the
directory when the server restarts. The `modelmesh serve` proxy needs none of this: its
`/metrics` sums the same families over its workers through the shared store.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Histogram

from .._core._config_schema import ObservabilityConfig
from ._base import BaseObservability
from ._families import FAMILIES, LATENCY_BUCKETS, MetricFeed

__all__ = ["PrometheusMetrics", "PrometheusObservability", "start_metrics_server", "render_metrics",
           "metrics_registry"]

_made_lock = threading.Lock()
_made: dict[int, PrometheusMetrics] = {}  # id(registry) -> its metrics: one set per registry


class PrometheusMetrics:
    """The mesh's metric families in `registry` (default: prometheus_client's global one)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        registry = registry if registry is not None else prometheus_client.REGISTRY
        self.registry = registry
        self.metrics: dict[str, Any] = {}
        for name, (kind, text, labels) in FAMILIES.items():
            if kind == "histogram":
                self.metrics[name] = Histogram(name, text, labels, buckets=LATENCY_BUCKETS, registry=registry)
            else:  # prometheus_client adds the _total itself
                self.metrics[name] = Counter(name.removesuffix("_total"), text, labels, registry=registry)

    @classmethod
    def for_registry(cls, registry: CollectorRegistry | None = None) -> PrometheusMetrics:
        """The one PrometheusMetrics of `registry`, made on first use."""
        key = id(registry if registry is not None else prometheus_client.REGISTRY)
        with _made_lock:
            found = _made.get(key)
            if found is None:
                found = _made[key] = cls(registry)
            return found

    def feed(self) -> Feeder:
        """A listener for one client's events (its own memory of requests in flight)."""
        return Feeder(self)

    @classmethod
    def instrument(cls, client: Any, registry: CollectorRegistry | None = None) -> Feeder:
        """Count `client`'s requests in the metrics of `registry`; returns the listener."""
        feeder = cls.for_registry(registry).feed()
        client.subscribe(feeder.on_event)
        return feeder

    def apply(self, samples: list[tuple[str, tuple[str, ...], float]]) -> None:
        for name, labels, value in samples:
            metric = self.metrics[name].labels(*labels)
            if FAMILIES[name][0] == "histogram":
                metric.observe(value)
            else:
                metric.inc(value)


class Feeder:
    def __init__(self, metrics: PrometheusMetrics) -> None:
        self.metrics = metrics
        self._feed = MetricFeed()

    def on_event(self, event: Any) -> None:
        self.metrics.apply(self._feed.samples(event))


class PrometheusObservability(BaseObservability):
    """`connector: prometheus`: the client's events counted in the global registry; with
    `config.port` (and optionally `config.addr`, default 127.0.0.1) also served on
    http://addr:port/metrics while the client is open."""

    name = "prometheus"

    def __init__(self, config: Mapping[str, Any] | None = None, *, settings: ObservabilityConfig | None = None,
                 secrets: Any = ()) -> None:
        super().__init__(config, settings=settings, secrets=secrets)
        unknown = sorted(set(self.config) - {"port", "addr"})
        if unknown:
            raise ValueError(f"config.{unknown[0]}: unknown key for the 'prometheus' connector (it takes port, addr)")
        port, addr = self.config.get("port"), self.config.get("addr", "127.0.0.1")
        if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 <= port < 65536):
            raise ValueError(f"config.port: expected a port number, got {port!r}")
        if not isinstance(addr, str):
            raise ValueError(f"config.addr: expected an address, got {addr!r}")
        self._feeder = PrometheusMetrics.for_registry().feed()
        self.server: Any = None
        if port is not None:
            try:
                self.server = start_metrics_server(port, addr)
            except OSError as exc:
                raise ValueError(f"config.port: cannot listen on {addr}:{port} ({exc.strerror or exc})") from None

    def emit(self, event: Any) -> None:  # every event counts, whatever events.filter lets through
        if not isinstance(event, Mapping):
            self._feeder.on_event(event)

    def log(self, record: Mapping[str, Any]) -> None:
        return None

    def flush(self, rows: Any = ()) -> None:
        return None

    def trace(self, entry: Mapping[str, Any]) -> None:
        return None

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"connector": self.name}
        if self.server is not None:
            out["port"] = self.server.server_port
        return out

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def metrics_registry() -> CollectorRegistry:
    """The registry to expose: in multiprocess mode a fresh one summing every worker's files,
    else prometheus_client's global one."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return prometheus_client.REGISTRY


def render_metrics() -> bytes:
    """The Prometheus text exposition of every family (every worker's, in multiprocess mode)."""
    return bytes(prometheus_client.generate_latest(metrics_registry()))


def start_metrics_server(port: int, addr: str = "127.0.0.1") -> Any:
    """Serve /metrics on http://addr:port in a daemon thread (port 0: a free one, see the
    returned server's `server_port`); `shutdown()` on the returned server stops it."""
    server, _thread = prometheus_client.start_http_server(port, addr, registry=metrics_registry())
    return server
