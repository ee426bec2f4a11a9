"""The live view: what a dashboard or `modelmesh status --watch` shows, kept from the events.

Theory of operation: `LiveView(client)` subscribes to a client's events and keeps, per pool
member, the attempts of the last `window` seconds (when, latency, whether it failed) and
the most recent events in a ring. `snapshot()` joins them with `client.status()` (health
is the core's; nothing is decided here) into one JSON-able dict: per pool, each member's
state, reason, recovery time, requests per minute, error rate, p50/p99 latency and spend;
per provider its state and spend; and the recent events. `table(snapshot)` renders it for
a terminal. The view is the process's own: with several worker processes, standbys are
shared through storage, but the rates are those of the process that answered.
"""
from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["LiveView", "table"]

_Sample = tuple[float, float | None, bool]  # (when, latency or None, failed)


class LiveView:
    def __init__(self, client: Any, *, window: float = 60.0, events: int = 50,
                 clock: Callable[[], float] | None = None) -> None:
        if not (isinstance(window, (int, float)) and window > 0):
            raise ValueError(f"LiveView window must be a positive number of seconds, got {window!r}")
        self.client = client
        self.window = float(window)
        self._clock = clock or getattr(client, "_clock", None) or time.time
        self._lock = threading.Lock()
        self._samples: dict[tuple[str, str], collections.deque[_Sample]] = {}
        self._events: collections.deque[dict[str, Any]] = collections.deque(maxlen=events)
        client.subscribe(self._on_event)

    def _on_event(self, event: Any) -> None:
        kind = event.type
        with self._lock:
            self._events.append(event.to_dict())
            if kind == "request_completed":
                self._add(event.pool, f"{event.provider}/{event.model}", (event.at, event.latency, False))
            elif kind == "attempt_failed":
                self._add(event.pool, f"{event.provider}/{event.model}", (event.at, None, True))

    def _add(self, pool: str, ref: str, sample: _Sample) -> None:
        samples = self._samples.setdefault((pool, ref), collections.deque())
        samples.append(sample)
        horizon = sample[0] - self.window
        while samples and samples[0][0] < horizon:
            samples.popleft()

    def snapshot(self) -> dict[str, Any]:
        status = self.client.status()
        now = self._clock()
        with self._lock:
            samples = {key: [s for s in found if s[0] >= now - self.window] for key, found in self._samples.items()}
            events = list(self._events)
        pools: dict[str, list[dict[str, Any]]] = {}
        for pool, rows in status["pools"].items():
            out = []
            for row in rows:
                mine = samples.get((pool, row["model"]), [])
                latencies = sorted(s[1] for s in mine if s[1] is not None)
                failed = sum(1 for s in mine if s[2])
                out.append({"model": row["model"], "status": row["status"], "reason": row["reason"],
                            "until": row["until"], "rpm": round(len(mine) * 60.0 / self.window, 2),
                            "error_rate": round(failed / len(mine), 4) if mine else None,
                            "p50": _percentile(latencies, 0.50), "p99": _percentile(latencies, 0.99),
                            "requests": row["requests"], "cost": row["cost"]})
            pools[pool] = out
        return {"at": now, "window": self.window, "pools": pools, "providers": status["providers"],
                "events": events}


def _percentile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 4)


def _cell(value: Any, kind: str = "") -> str:
    if value is None:
        return "-"
    if kind == "ms":
        return f"{value * 1000:.0f}ms"
    if kind == "%":
        return f"{value * 100:.1f}%"
    if kind == "$":
        return f"${value:.4f}"
    return str(value)


def table(snapshot: Mapping[str, Any]) -> str:
    """The snapshot as a plain-text table (one block per pool), then the providers."""
    now = snapshot.get("at") or time.time()
    lines: list[str] = []
    head = ("model", "state", "reason", "back in", "req/min", "errors", "p50", "p99", "spend")
    for pool, rows in snapshot["pools"].items():
        cells = [head]
        for r in rows:
            back = "-" if r["until"] is None else f"{max(0.0, r['until'] - now):.0f}s"
            cells.append((r["model"], r["status"], _cell(r["reason"]), back, _cell(r["rpm"]),
                          _cell(r["error_rate"], "%"), _cell(r["p50"], "ms"), _cell(r["p99"], "ms"),
                          _cell(r["cost"], "$")))
        widths = [max(len(row[i]) for row in cells) for i in range(len(head))]
        lines.append(f"pool {pool}")
        lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
        lines.append("")
    providers = snapshot.get("providers") or {}
    if providers:
        lines.append("providers")
        for name, p in providers.items():
            state = "up" if p.get("up") else f"down ({p.get('reason') or 'unknown'})"
            quota = f", {quota_text(p['quota'])}" if p.get("quota") else ""
            lines.append(f"  {name}: {state}, spend today {_cell(p.get('spend_day'), '$')}{quota}")
    return "\n".join(lines)


def quota_text(q: Mapping[str, Any]) -> str:
    """What a provider's quota endpoint said, in a few words (status()'s `providers.<id>.quota`)."""
    unit = q.get("unit") or ""
    remaining, limit, used = q.get("remaining"), q.get("limit"), q.get("used")
    if q.get("available") is False:
        text = "quota: the provider says the key cannot be used"
        return text + (f" (balance {remaining:.2f} {unit})" if remaining is not None else "")
    if remaining is not None and limit:
        return f"quota {remaining:.2f} of {limit:.2f} {unit} left ({remaining / limit:.0%})"
    if remaining is not None:
        return f"balance {remaining:.2f} {unit}"
    if used is not None:
        return f"quota used {used:.2f} {unit} (no limit)"
    return "quota: not reported"
