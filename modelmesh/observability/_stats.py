"""Statistics: per model, provider and pool aggregates of what the mesh did, from its events.

Theory of operation. `Statistics.observe(event)` adds each finished request (count, failures,
tokens, cost, latency) and each standby period to the current *window*. `flush(now)` closes
the window, keeps it for `retention` seconds and returns its rows (one per scope and key:
`{"type": "statistics", "scope": "model", "key": "openai/gpt-4o", ...}`), which the Observer
hands to every sink's `flush`. `view(now)` merges the retained windows and the open one:
what `client.statistics()` answers. Latency percentiles are exact over the samples kept:
up to `max_samples` per key and window (a uniform reservoir beyond that, with a seeded
generator, so a replay aggregates the same).

Downtime is the time a model (scope `model`) or a provider (scope `provider`) spent on
standby within the window: a period still open at a flush counts up to the flush and goes on
in the next window. Nothing here reads a clock: times come from the events and the caller.
"""
from __future__ import annotations

import random
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .._core._events import (
    ModelDeactivated,
    ModelRecovered,
    ProviderDeactivated,
    ProviderRecovered,
    RequestCompleted,
    RequestFailed,
)

__all__ = ["Statistics"]


@dataclass(slots=True)
class _Agg:
    requests: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    downtime: float = 0.0
    latencies: list[float] = field(default_factory=list)
    seen: int = 0  # latencies offered (the reservoir keeps max_samples of them)

    def merge(self, other: _Agg) -> None:
        self.requests += other.requests
        self.failures += other.failures
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cost += other.cost
        self.downtime += other.downtime
        self.latencies += other.latencies
        self.seen += other.seen


@dataclass(slots=True)
class _Window:
    start: float
    end: float | None = None
    rows: dict[tuple[str, str], _Agg] = field(default_factory=dict)


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


class Statistics:
    def __init__(self, *, scopes: Iterable[str] = ("model", "provider", "pool"), retention: float = 7 * 86400.0,
                 start: float = 0.0, max_samples: int = 10000, seed: int = 0) -> None:
        self.scopes = tuple(scopes)
        self.retention = float(retention)
        self.max_samples = max_samples
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._open = _Window(start=start)
        self._closed: list[_Window] = []
        self._down: dict[tuple[str, str], float] = {}  # (scope, key) -> standby since

    def _keys(self, pool: str, provider: str, model: str) -> list[tuple[str, str]]:
        # a model is named "provider/model-id" in every scope that shows it
        ref = model if "/" in model or not provider else f"{provider}/{model}"
        out = []
        if "model" in self.scopes and model:
            out.append(("model", ref))
        if "provider" in self.scopes and provider:
            out.append(("provider", provider))
        if "pool" in self.scopes and pool:
            out.append(("pool", pool))
        return out

    def _agg(self, key: tuple[str, str]) -> _Agg:
        agg = self._open.rows.get(key)
        if agg is None:
            agg = self._open.rows[key] = _Agg()
        return agg

    def observe(self, event: Any) -> None:
        with self._lock:
            kind = type(event)
            if kind is RequestCompleted:
                for key in self._keys(event.pool, event.provider, event.model):
                    a = self._agg(key)
                    a.requests += 1
                    a.prompt_tokens += event.prompt_tokens
                    a.completion_tokens += event.completion_tokens
                    a.cost += event.cost
                    self._sample(a, event.latency)
            elif kind is RequestFailed:
                for key in self._keys(event.pool, "", ""):
                    a = self._agg(key)
                    a.requests += 1
                    a.failures += 1
            elif kind is ModelDeactivated:
                for key in self._model_keys(event.pool, event.model):
                    self._down.setdefault(key, event.at)
            elif kind is ModelRecovered:
                for key in self._model_keys(event.pool, event.model):
                    self._up(key, event.at)
            elif kind is ProviderDeactivated and "provider" in self.scopes:
                self._down.setdefault(("provider", event.provider), event.at)
            elif kind is ProviderRecovered and "provider" in self.scopes:
                self._up(("provider", event.provider), event.at)

    def _model_keys(self, pool: str, model: str) -> list[tuple[str, str]]:
        # a model on standby in two pools is one model down: its first standby starts the period
        return [("model", model)] if "model" in self.scopes else []

    def _sample(self, a: _Agg, latency: float) -> None:
        a.seen += 1
        if len(a.latencies) < self.max_samples:
            a.latencies.append(latency)
        else:
            j = self._rng.randrange(a.seen)
            if j < self.max_samples:
                a.latencies[j] = latency

    def _up(self, key: tuple[str, str], at: float) -> None:
        since = self._down.pop(key, None)
        if since is not None:
            self._downtime(key, max(since, self._open.start), at)

    def _downtime(self, key: tuple[str, str], start: float, end: float) -> None:
        if end > start:
            self._agg(key).downtime += end - start

    def flush(self, now: float) -> list[dict[str, Any]]:
        """Close the open window at `now`: its rows, and a new window from `now`."""
        with self._lock:
            for key, since in self._down.items():
                self._downtime(key, max(since, self._open.start), now)
            window, self._open = self._open, _Window(start=now)
            window.end = now
            self._closed.append(window)
            self._closed = [w for w in self._closed if w.end is not None and w.end > now - self.retention]
            return _rows(window.rows, window.start, now)

    def view(self, now: float) -> list[dict[str, Any]]:
        """Every retained window and the open one, merged: rows from the oldest start to `now`."""
        with self._lock:
            merged: dict[tuple[str, str], _Agg] = {}
            windows = [w for w in self._closed if w.end is not None and w.end > now - self.retention]
            for w in (*windows, self._open):
                for key, agg in w.rows.items():
                    merged.setdefault(key, _Agg()).merge(agg)
            for key, since in self._down.items():
                if now > max(since, self._open.start):
                    merged.setdefault(key, _Agg()).downtime += now - max(since, self._open.start)
            start = windows[0].start if windows else self._open.start
            return _rows(merged, start, now)


def _rows(rows: dict[tuple[str, str], _Agg], start: float, end: float) -> list[dict[str, Any]]:
    out = []
    for (scope, key), a in sorted(rows.items()):
        out.append({"type": "statistics", "scope": scope, "key": key, "window_start": start, "window_end": end,
                    "requests": a.requests, "failures": a.failures, "prompt_tokens": a.prompt_tokens,
                    "completion_tokens": a.completion_tokens, "cost": round(a.cost, 10),
                    "latency_p50": _percentile(a.latencies, 0.5), "latency_p90": _percentile(a.latencies, 0.9),
                    "latency_p99": _percentile(a.latencies, 0.99), "downtime": a.downtime})
    return out
