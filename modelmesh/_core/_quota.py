"""Provider queries (seed 002's quota and pricing interfaces): who is asked what, when, and
what an answer means.

Theory of operation. A provider whose configuration says `quota.query_remaining` or
`quota.query_current` is asked for its quota every `quota.query_interval`; one with
`pricing.query`, for its model prices every `pricing.query_interval`; both first as the
client starts. `Queries.due(now)` says which questions are due (each scheduled again at
once, so no other thread asks too); `MeshCore.due_queries` makes each a `Query` whose
`request` the shell sends, and `MeshCore.queried` is fed the answer's status, headers and
body. This module reads them, in the connector's own format:

- quota: OpenRouter's key endpoint (`GET {base_url}/key`: `limit`, `limit_remaining`,
  `usage`, `usage_daily`, in USD) and DeepSeek's balance (`GET /user/balance` on its host:
  `is_available`, `balance_infos[].total_balance`); a custom connector class answers with
  its own `quota_request` and `parse_quota`.
- pricing: a model listing whose entries carry `pricing` (OpenRouter's: USD per token as
  strings, `prompt`, `completion`, `request`; and `context_length`).

What the core does with them (`_mesh.py`, `_health.py`): with `query_remaining`, a report of
less than `quota.min_remaining` of the limit left (or nothing left, or a key the provider says
cannot be used) puts the provider on standby, reason `quota_low`, until one interval after
the next query: it is rotated away from before its 429. The next report with enough left
brings it back at once; a query that fails changes nothing, and the standby then lapses by
time, as if the query had never been asked. Prices from a listing replace the model's
(configured or catalogued) ones: cost-first order, budgets and cost figures use the freshest
known price.

Nothing here reads a clock or does I/O: the shell sends, the core decides.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ._types import WireRequest

if TYPE_CHECKING:
    from ._config_schema import MeshConfig
    from .codecs._base import Codec, Target

__all__ = ["QuotaReport", "Price", "Query", "Queries", "quota_request", "parse_quota", "parse_prices"]


@dataclass(frozen=True, slots=True, kw_only=True)
class QuotaReport:
    """What a provider said of its quota. None: it did not say."""

    available: bool = True            # the provider says the key can be used
    remaining: float | None = None    # left, in `unit`
    limit: float | None = None        # the limit, in `unit` (None: no limit, or not told)
    used: float | None = None         # used so far (OpenRouter: since the key was made)
    used_today: float | None = None
    unit: str = "USD"
    at: float = 0.0                   # when it was told

    @property
    def fraction(self) -> float | None:
        """The share of the limit left, when both are known."""
        if self.remaining is None or not self.limit:
            return None
        return max(0.0, self.remaining / self.limit)

    def low(self, min_remaining: float) -> bool:
        """Whether the provider should be rotated away from before it refuses."""
        if not self.available or (self.remaining is not None and self.remaining <= 0):
            return True
        fraction = self.fraction
        return fraction is not None and fraction < min_remaining

    def to_dict(self) -> dict[str, Any]:
        return {"available": self.available, "remaining": self.remaining, "limit": self.limit, "used": self.used,
                "used_today": self.used_today, "unit": self.unit, "fraction": self.fraction, "at": self.at}


@dataclass(frozen=True, slots=True, kw_only=True)
class Price:
    """A model's price as its provider lists it (USD)."""

    input_per_1m: float = 0.0
    output_per_1m: float = 0.0
    per_request: float = 0.0
    context_window: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Query:
    """A question for a provider (`kind` "quota" or "pricing"): the shell sends `request`."""

    key: str
    provider: str
    kind: str
    connector: str
    target: Target
    request: WireRequest
    timeout: float


class Queries:
    """Which provider is asked what, every how long; and when next."""

    def __init__(self, config: MeshConfig, offered: Mapping[str, frozenset[str]]) -> None:
        self.every: dict[tuple[str, str], float] = {}
        for pid, p in config.providers.items():
            if not p.enabled:
                continue
            if (p.quota_query_current or p.quota_query_remaining) and "quota" in offered.get(pid, ()):
                self.every[(pid, "quota")] = p.quota_query_interval
            if p.pricing_query and "pricing" in offered.get(pid, ()):
                self.every[(pid, "pricing")] = p.pricing_query_interval
        self._next: dict[tuple[str, str], float] | None = None

    def schedule(self, now: float) -> None:
        if self._next is None:
            self._next = dict.fromkeys(self.every, now)  # asked as the client starts

    def due(self, now: float) -> list[tuple[str, str]]:
        self.schedule(now)
        assert self._next is not None
        out = []
        for key, at in self._next.items():
            if now >= at:
                out.append(key)
                self._next[key] = now + self.every[key]
        return out

    def next_at(self, pid: str, kind: str) -> float | None:
        return None if self._next is None else self._next.get((pid, kind))


# -- the connectors' formats ----------------------------------------------------------------------

def quota_request(connector: str, codec: Codec, target: Target) -> WireRequest | None:
    """The request asking `connector`'s provider for its quota; None when it has none. The
    headers (the key) are the codec's own, as for its model listing."""
    if ":" in connector:
        made = getattr(codec, "quota_request", None)
        return made(target) if callable(made) else None
    listing = codec.build_request(target, "models", {}, stream=False)
    base = (target.base_url or codec.default_base_url or "").rstrip("/")
    if connector == "openrouter":
        return replace(listing, url=f"{base}/key")
    if connector == "deepseek":  # on the host, not under /v1
        host = base[:-3] if base.endswith("/v1") else base
        return replace(listing, url=f"{host}/user/balance")
    return None


def parse_quota(connector: str, codec: Codec, status: int, headers: Mapping[str, str], body: bytes,
                now: float) -> QuotaReport | None:
    """The quota an answer reports; None when it failed or makes no sense (nothing changes)."""
    if ":" in connector:
        parse = getattr(codec, "parse_quota", None)
        report = parse(status, headers, body) if callable(parse) else None
        return replace(report, at=now) if isinstance(report, QuotaReport) else None
    if not 200 <= status < 300:
        return None
    data = _json(body)
    if connector == "openrouter":
        key = data.get("data") if isinstance(data, dict) else None
        if not isinstance(key, dict):
            return None
        return QuotaReport(remaining=_number(key.get("limit_remaining")), limit=_number(key.get("limit")),
                           used=_number(key.get("usage")), used_today=_number(key.get("usage_daily")), unit="USD",
                           at=now)
    if connector == "deepseek":
        if not isinstance(data, dict) or not isinstance(data.get("balance_infos"), list):
            return None
        infos = [i for i in data["balance_infos"] if isinstance(i, dict)]
        chosen = next((i for i in infos if i.get("currency") == "USD"), infos[0] if infos else None)
        available = data.get("is_available") is not False
        if chosen is None:
            return QuotaReport(available=available, at=now)
        return QuotaReport(available=available, remaining=_number(chosen.get("total_balance")),
                           unit=str(chosen.get("currency") or "USD"), at=now)
    return None


def parse_prices(body: bytes) -> dict[str, Price]:
    """Model id -> price, from a model listing whose entries carry `pricing` (USD per token)."""
    data = _json(body)
    items = data.get("data") if isinstance(data, dict) else None
    out: dict[str, Price] = {}
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not isinstance(item.get("pricing"), dict):
            continue
        p = item["pricing"]
        per_in, per_out, per_request = _number(p.get("prompt")), _number(p.get("completion")), _number(p.get("request"))
        if per_in is None or per_out is None or per_in < 0 or per_out < 0:
            continue  # OpenRouter marks a variable price with -1: no price to go by
        context = item.get("context_length")
        out[item["id"]] = Price(input_per_1m=per_in * 1e6, output_per_1m=per_out * 1e6,
                                per_request=per_request if per_request and per_request > 0 else 0.0,
                                context_window=context if isinstance(context, int) and context > 0 else None)
    return out


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _number(value: Any) -> float | None:
    """A JSON number, or a decimal string ("110.00", "0.0000015"); None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if value == value and abs(value) != float("inf") else None
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if number == number and abs(number) != float("inf") else None
    return None
