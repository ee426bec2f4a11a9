"""`GET /metrics`: the proxy's counters in Prometheus' text format, summed over every worker.

Theory of operation: each worker counts in memory (a dict under a lock: microseconds per
request) and adds what it counted since its last flush to the store's counters, one atomic
`add` per series (`metrics/<series>`), at most every `flush_every` seconds (after a request
is answered, never before), when `/metrics` is asked, and when the worker stops. The store
thus holds the sum over every worker that ever ran, each count added exactly once:
no double counting, and a worker that restarts loses nothing it flushed. What a worker
killed without a chance to stop (SIGKILL) counted since its last flush is lost; what the
others counted since theirs shows at their next flush. `/metrics` reads every series in one
`load_many` and writes them out; the standby gauges are this worker's view of the shared
health, as of now.

With `memory` storage (one worker) the store is this process's own: the same path.

Besides the proxy's own families (answers by HTTP status), `on_event` counts the mesh's
families of `modelmesh.observability._families` (attempts, failovers and standbys by reason,
tokens, cost, latency by provider and model) from the client's events, through the same
flushes: the names and labels an app gets from prometheus_client, summed over the workers.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from ..connectors.storage import StorageUnavailable
from ..observability._families import FAMILIES, LATENCY_BUCKETS, MetricFeed

__all__ = ["Metrics", "LATENCY_BUCKETS"]

_log = logging.getLogger("modelmesh.proxy")
PREFIX = "metrics/"
_KEEP = 400 * 86400.0  # counters are refreshed at every flush; one unused for a year goes

_HELP = {
    "modelmesh_requests_total": ("counter", "Requests answered, by pool, provider, model and HTTP status"),
    "modelmesh_attempts_total": ("counter", "Upstream attempts made for the requests, by pool, provider and model"),
    "modelmesh_failovers_total": ("counter", "Moves to another model within a request, by pool"),
    "modelmesh_request_duration_seconds": ("histogram", "Time from the request to the end of its answer, by pool"),
    "modelmesh_cost_usd_total": ("counter", "Cost of the answered requests in USD, by pool, provider and model"),
    "modelmesh_tokens_total": ("counter", "Tokens of the answered requests, by pool, provider, model and kind"),
    "modelmesh_standby_models": ("gauge", "Models on standby now, by pool (this worker's view of shared health)"),
    "modelmesh_pool_models": ("gauge", "Models configured, by pool"),
    # the mesh's own families (modelmesh.observability), from its events: the same as an app's
    **{name: (kind, text) for name, (kind, text, _labels) in FAMILIES.items()},
}

Labels = tuple[tuple[str, str], ...]


class Metrics:
    def __init__(self, storage: Any, *, flush_every: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.storage, self.flush_every, self.clock = storage, float(flush_every), clock
        self._pending: dict[tuple[str, Labels], float] = {}
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._flushed_at = clock()
        self._feed = MetricFeed()

    def on_event(self, event: Any) -> None:
        """Count one mesh event in the mesh's families (a listener of the proxy's client)."""
        adds: list[tuple[str, Labels, float]] = []
        for name, values, amount in self._feed.samples(event):
            labels = tuple(zip(FAMILIES[name][2], values, strict=True))
            if FAMILIES[name][0] != "histogram":
                adds.append((name, labels, amount))
                continue
            adds += [(f"{name}_count", labels, 1.0), (f"{name}_sum", labels, amount)]
            adds += [(f"{name}_bucket", (*labels, ("le", _le(le))), 1.0)
                     for le in (*LATENCY_BUCKETS, float("inf")) if amount <= le]
        self._add(adds)

    def observe(self, record: dict[str, Any], failovers: int) -> None:
        """Count one answered request from its access-log record."""
        pool = record.get("pool") or ""
        where = (("pool", pool), ("provider", record.get("provider") or ""), ("model", record.get("model") or ""))
        latency = float(record.get("latency_ms") or 0.0) / 1000.0
        adds: list[tuple[str, Labels, float]] = [
            ("modelmesh_requests_total", (*where, ("status", str(record.get("status")))), 1.0),
            ("modelmesh_request_duration_seconds_count", (("pool", pool),), 1.0),
            ("modelmesh_request_duration_seconds_sum", (("pool", pool),), latency),
        ]
        adds += [("modelmesh_request_duration_seconds_bucket", (("pool", pool), ("le", _le(le))), 1.0)
                 for le in (*LATENCY_BUCKETS, float("inf")) if latency <= le]
        if record.get("attempts"):
            adds.append(("modelmesh_attempts_total", where, float(record["attempts"])))
        if failovers:
            adds.append(("modelmesh_failovers_total", (("pool", pool),), float(failovers)))
        if record.get("cost"):
            adds.append(("modelmesh_cost_usd_total", where, float(record["cost"])))
        for kind in ("prompt", "completion"):
            if record.get(f"{kind}_tokens"):
                adds.append(("modelmesh_tokens_total", (*where, ("kind", kind)), float(record[f"{kind}_tokens"])))
        self._add(adds)

    def _add(self, adds: list[tuple[str, Labels, float]]) -> None:
        with self._lock:
            for name, labels, amount in adds:
                series = (name, labels)
                self._pending[series] = self._pending.get(series, 0.0) + amount

    def maybe_flush(self) -> None:
        if self.clock() - self._flushed_at >= self.flush_every:
            self.flush(patient=False)

    def flush(self, *, patient: bool = True) -> bool:
        """Add what this worker counted since its last flush to the store; False when the store
        could not be reached (the counts stay here, for the next flush)."""
        if not self._flushing.acquire(blocking=patient):
            return True
        try:
            with self._lock:
                pending, self._pending = self._pending, {}
                self._flushed_at = self.clock()
            now = time.time()
            done = []
            try:
                for series, amount in pending.items():
                    self.storage.add(_key(series), amount, expires_at=now + _KEEP)
                    done.append(series)
            except StorageUnavailable as exc:
                _log.warning("modelmesh proxy: could not add the metrics to the store (%s); kept for the next try", exc)
                with self._lock:
                    for series in pending.keys() - set(done):
                        self._pending[series] = self._pending.get(series, 0.0) + pending[series]
                return False
            return True
        finally:
            self._flushing.release()

    def render(self, gauges: Iterable[tuple[str, Labels, float]] = ()) -> str:
        """Every worker's counters (this one's flushed first) and `gauges`, as Prometheus text."""
        self.flush()
        series: dict[str, list[tuple[Labels, float]]] = {}
        for key, raw in self.storage.load_many(PREFIX).items():
            try:
                name, labels = json.loads(key[len(PREFIX):])
                series.setdefault(name, []).append((tuple((str(k), str(v)) for k, v in labels), float(raw)))
            except (ValueError, TypeError):
                continue  # not one of ours
        for name, labels, value in gauges:
            series.setdefault(name, []).append((labels, value))
        lines = []
        for family, (kind, text) in _HELP.items():
            names = [family] if kind != "histogram" else [f"{family}_bucket", f"{family}_sum", f"{family}_count"]
            rows = [(n, labels, v) for n in names for labels, v in sorted(series.get(n, []), key=_order)]
            lines += [f"# HELP {family} {text}", f"# TYPE {family} {kind}"]
            lines += [f"{n}{_labels(labels)} {_value(v)}" for n, labels, v in rows]
        return "\n".join(lines) + "\n"


def _order(item: tuple[Labels, float]) -> tuple[Any, ...]:
    labels = item[0]
    return tuple((k, float("inf") if v == "+Inf" else float(v)) if k == "le" else (k, v) for k, v in labels)


def _le(value: float) -> str:
    return "+Inf" if value == float("inf") else repr(value)


def _key(series: tuple[str, Labels]) -> str:
    return PREFIX + json.dumps([series[0], [list(p) for p in series[1]]], separators=(",", ":"))


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _value(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)
