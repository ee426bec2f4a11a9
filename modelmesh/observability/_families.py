"""The mesh's metric families and how events move them, written once for every exporter.

`MetricFeed.samples(event)` turns one mesh event into `(family, labels, value)` changes:
counter increments, and for the histogram one observation. Two exporters apply them: the
`prometheus_client` one (`_prometheus.py`: an app's process, or several with its
multiprocess mode) and the proxy's `/metrics` (`proxy/_metrics.py`: summed over workers
through the shared store). Both therefore expose the same names and labels.

A *failover* is a move to another model within a request: a `request_routed` to a model other
than the request's previous one. Its `reason` is the error kind of the attempt that failed
before it. The feed remembers, per request in flight, only that ref and that kind; a request's
entry goes when it completes or fails.
"""
from __future__ import annotations

import threading
from typing import Any

from .._core._events import (
    AttemptFailed,
    ModelDeactivated,
    ProviderDeactivated,
    RequestCompleted,
    RequestFailed,
    RequestRouted,
)

__all__ = ["FAMILIES", "LATENCY_BUCKETS", "MetricFeed", "Sample"]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_WHERE = ("pool", "provider", "model")
_MAX_INFLIGHT = 10000

# name -> (kind, help, label names)
FAMILIES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "modelmesh_mesh_requests_total": (
        "counter", "Requests the mesh finished, by pool, the provider and model that answered, and outcome "
                   "(success or failure; a failure names no provider or model)", (*_WHERE, "outcome")),
    "modelmesh_mesh_attempts_total": ("counter", "Upstream attempts, by pool, provider and model", _WHERE),
    "modelmesh_mesh_failovers_total": (
        "counter", "Moves to another model within a request, by pool and the error kind that caused them",
        ("pool", "reason")),
    "modelmesh_mesh_standbys_total": (
        "counter", "Models (and providers: pool and model empty) put on standby, by reason", (*_WHERE, "reason")),
    "modelmesh_mesh_tokens_total": ("counter", "Tokens of the answered requests, by kind (prompt, completion)",
                                    (*_WHERE, "kind")),
    "modelmesh_mesh_cost_usd_total": ("counter", "Cost of the answered requests in USD", _WHERE),
    "modelmesh_mesh_request_duration_seconds": (
        "histogram", "Time from a request's start to its answer, failovers included, by who answered", _WHERE),
}

Sample = tuple[str, tuple[str, ...], float]  # family, label values (in FAMILIES' order), amount or observation


class MetricFeed:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inflight: dict[str, tuple[str, str]] = {}  # request id -> (last ref, last failure kind)

    def samples(self, event: Any) -> list[Sample]:
        kind = type(event)
        if kind is RequestRouted:
            ref = f"{event.provider}/{event.model}"
            with self._lock:
                before = self._inflight.get(event.request_id)
                if before is None and len(self._inflight) >= _MAX_INFLIGHT:  # a cancelled call has no last event
                    self._inflight.pop(next(iter(self._inflight)))
                self._inflight[event.request_id] = (ref, before[1] if before else "")
            out: list[Sample] = [("modelmesh_mesh_attempts_total", (event.pool, event.provider, event.model), 1.0)]
            if before is not None and before[0] != ref:
                out.append(("modelmesh_mesh_failovers_total", (event.pool, before[1] or "unknown"), 1.0))
            return out
        if kind is AttemptFailed:
            with self._lock:
                ref = f"{event.provider}/{event.model}"
                self._inflight[event.request_id] = (self._inflight.get(event.request_id, (ref, ""))[0], event.kind)
            return []
        if kind is RequestCompleted:
            with self._lock:
                self._inflight.pop(event.request_id, None)
            where = (event.pool, event.provider, event.model)
            out = [("modelmesh_mesh_requests_total", (*where, "success"), 1.0),
                   ("modelmesh_mesh_request_duration_seconds", where, float(event.latency))]
            if event.prompt_tokens:
                out.append(("modelmesh_mesh_tokens_total", (*where, "prompt"), float(event.prompt_tokens)))
            if event.completion_tokens:
                out.append(("modelmesh_mesh_tokens_total", (*where, "completion"), float(event.completion_tokens)))
            if event.cost:
                out.append(("modelmesh_mesh_cost_usd_total", where, float(event.cost)))
            return out
        if kind is RequestFailed:
            with self._lock:
                self._inflight.pop(event.request_id, None)
            return [("modelmesh_mesh_requests_total", (event.pool, "", "", "failure"), 1.0)]
        if kind is ModelDeactivated:
            provider, _, model = event.model.partition("/")
            return [("modelmesh_mesh_standbys_total", (event.pool, provider, model, event.reason), 1.0)]
        if kind is ProviderDeactivated:
            return [("modelmesh_mesh_standbys_total", ("", event.provider, "", event.reason), 1.0)]
        return []
